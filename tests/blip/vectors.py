"""Replays recorded Couchbase Lite sessions through BlipCore (test helper)."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.blip import (
    BlipCore,
    BodyReceived,
    FrameDecoder,
    FrameFlags,
    MessageBegun,
    MessageEnded,
    MessageReceived,
    MessageType,
)
from engine.blip.frame import decode_header

SHARED = Path(__file__).parents[2].parent / "shared" / "vectors"
DATA = Path(__file__).parent / "data"
TYPE_NAMES = {"REQ": MessageType.MSG, "RES": MessageType.RPY, "ERR": MessageType.ERR}


def vector_files() -> list[Path]:
    """Every recorded session in the shared folder, and the small copies in data/."""
    return sorted(SHARED.glob("cbl-3.2.4*/*.jsonl")) + sorted(DATA.glob("*.jsonl"))


@dataclass
class Expected:
    """What was recorded in one direction of one connection."""

    frames: list[dict[str, Any]] = field(default_factory=list)
    messages: list[tuple[MessageType, int, dict[str, str], Any]] = field(default_factory=list)
    acks: list[str] = field(default_factory=list)


def load(path: Path) -> dict[tuple[int, str], Expected]:
    """Recorded frames, messages and ACKs, keyed by (connection, direction)."""
    out: dict[tuple[int, str], Expected] = defaultdict(Expected)
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if rec.get("type") == "frame":  # cbl-3.2.4-sessions format
            exp = out[rec["conn"], rec["dir"]]
            exp.frames.append(rec)
            if rec["flags"] & 0x07 >= 4:
                exp.acks.append(rec["hex"])
        elif rec.get("type") == "message":
            out[rec["conn"], rec["dir"]].messages.append(
                (TYPE_NAMES[rec["msgType"]], rec["msgNo"], rec["properties"], rec["body"])
            )
        elif "message" in rec:  # cbl-3.2.4 format: the client's frame, then its message
            msg = rec["message"]
            out[rec["conn"], rec["dir"]].messages.append(
                (TYPE_NAMES[msg["type"]], msg["msgno"], msg["properties"], msg["body"])
            )
        elif "hex" in rec:
            exp = out[rec["conn"], rec["dir"]]
            exp.frames.append(rec)
            if rec["dir"] == "out":  # the test peer's frames carry their message
                kind = "ERR" if "ERR" in rec["flagNames"] else rec["flagNames"][0]
                props = {k: str(v) for k, v in rec["properties"].items()}
                exp.messages.append((TYPE_NAMES[kind], rec["msgno"], props, rec["body"]))
    return out


def body_matches(body: bytes, recorded: dict[str, Any]) -> bool:
    if "json" in recorded:
        return bool(json.loads(body) == recorded["json"])
    if "text" in recorded:
        return body.decode() == recorded["text"]
    return body.hex() == recorded["hex"]


def check_crcs(frames: list[dict[str, Any]]) -> int:
    """Decode one direction's frames in order; check body and CRC; return frames checked."""
    decoder = FrameDecoder()
    checked = 0
    for rec in frames:
        decoded = decoder.decode(bytes.fromhex(rec["hex"]))
        if decoded.flags & 0x07 >= 4:
            assert decoded.ack_bytes == rec["ackBytes"]
            continue
        if "plainHex" in rec:
            assert decoded.body.hex() == rec["plainHex"]
        recorded_crc = rec.get("checksum", rec["hex"][-8:])
        assert f"{decoder.checksum:08x}" == recorded_crc
        checked += 1
    return checked


@dataclass
class Replay:
    """Messages our cores reassembled and ACK frames they produced, per direction."""

    messages: dict[tuple[int, str], list[tuple[MessageType, int, dict[str, str], bytes]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    acks: dict[tuple[int, str], list[str]] = field(default_factory=lambda: defaultdict(list))


def replay(path: Path) -> Replay:
    """Feed each connection's frames, in recorded order, to one core per receiving side.

    The core receiving direction ``d`` plays the peer that sends in the other direction: it
    sends the requests that peer sent (so replies are expected) and produces its ACKs.
    """
    result = Replay()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    frames = [r for r in lines if ("hex" in r and "dir" in r and "message" not in r)]
    cores: dict[tuple[int, str], BlipCore] = {}
    partial: dict[tuple[int, str, MessageType, int], tuple[int, dict[str, str], bytearray]] = {}
    other = {"c2s": "s2c", "s2c": "c2s", "in": "out", "out": "in"}
    for rec in frames:
        conn, direction = rec["conn"], rec["dir"]
        key = (conn, direction)
        core = cores.setdefault(key, BlipCore(name=f"{conn}:{direction}"))
        sender = cores.setdefault((conn, other[direction]), BlipCore())
        core.receive_frame(bytes.fromhex(rec["hex"]))
        done = []
        for event in core.events_received():
            if isinstance(event, MessageReceived):
                done.append((event.type, event.number, event.flags, event.properties, event.body))
            elif isinstance(event, MessageBegun):
                partial[conn, direction, event.type, event.number] = (
                    event.flags,
                    event.properties,
                    bytearray(),
                )
            elif isinstance(event, BodyReceived):
                partial[conn, direction, event.type, event.number][2].extend(event.data)
                core.release(event.type, event.number, event.credit)
            elif isinstance(event, MessageEnded):
                flags, props, body = partial.pop((conn, direction, event.type, event.number))
                done.append((event.type, event.number, flags, props, bytes(body)))
            else:
                raise AssertionError(f"unexpected event {event}")
        for kind, number, flags, props, body in done:
            result.messages[key].append((kind, number, props, body))
            if kind is MessageType.MSG:
                # The peer that sent this request is the core receiving the other direction.
                peer = cores.setdefault((conn, other[direction]), BlipCore())
                sent = peer.send_request(props, body, no_reply=bool(flags & FrameFlags.NO_REPLY))
                assert sent.number == number
        for (c, d), out_core in ((key, core), ((conn, other[direction]), sender)):
            for frame in out_core.frames_to_send():
                if decode_header(frame)[1] & 0x07 >= 4:
                    result.acks[c, other[d]].append(frame.hex())
    return result
