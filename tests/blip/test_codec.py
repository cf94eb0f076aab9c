"""Encoder output equals bytes computed by hand from the spec; decoder errors are typed."""

from __future__ import annotations

import zlib

import pytest

from engine.blip import (
    BlipCore,
    ChecksumError,
    CompressionError,
    FatalProtocolError,
    FrameDecoder,
    FrameEncoder,
    FrameError,
    FrameFlags,
    LimitExceededError,
    LocalProtocolError,
    MessageType,
    decode_properties,
    decode_varint,
    encode_properties,
    encode_varint,
)
from engine.blip.frame import decode_header, encode_header


def crc(data: bytes, start: int = 0) -> bytes:
    return zlib.crc32(data, start).to_bytes(4, "big")


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, "00"),
        (1, "01"),
        (127, "7f"),
        (128, "8001"),
        (300, "ac02"),
        (16383, "ff7f"),
        (16384, "808001"),
        (65508, "e4ff03"),
        (2**64 - 1, "ffffffffffffffffff01"),
    ],
)
def test_varint_round_trip(value: int, encoded: str) -> None:
    assert encode_varint(value).hex() == encoded
    assert decode_varint(bytes.fromhex(encoded) + b"\x55") == (value, len(encoded) // 2)


@pytest.mark.parametrize("data", ["", "80", "ffff", "ff" * 10 + "01", "ffffffffffffffffff7f"])
def test_bad_varints_are_fatal(data: str) -> None:
    with pytest.raises(FatalProtocolError):
        decode_varint(bytes.fromhex(data))


def test_varint_range() -> None:
    with pytest.raises(ValueError):
        encode_varint(-1)
    with pytest.raises(ValueError):
        encode_varint(2**64)


def test_header() -> None:
    assert encode_header(1, 0x00) == b"\x01\x00"
    assert encode_header(200, 0x48) == b"\xc8\x01\x48"
    assert decode_header(b"\xc8\x01\x48rest") == (200, 0x48, 3)
    for bad in (b"", b"\x01", b"\x80", b"\x01\x80"):
        with pytest.raises(FatalProtocolError):
            decode_header(bad)


def test_properties_encoding() -> None:
    # The length is written even when there are no properties (spec §3.4).
    assert encode_properties({}) == b"\x00"
    assert encode_properties(None) == b"\x00"
    strings = b"Profile\x00getCheckpoint\x00client\x00x\x00"
    assert len(strings) == 31
    assert encode_properties({"Profile": "getCheckpoint", "client": "x"}) == b"\x1f" + strings
    assert decode_properties(strings) == {"Profile": "getCheckpoint", "client": "x"}
    assert decode_properties("é\x00ü\x00".encode()) == {"é": "ü"}
    assert decode_properties(b"k\x00\x00") == {"k": ""}


@pytest.mark.parametrize("data", [b"k\x00v", b"k\x00", b"a\x00b\x00c\x00", b"\xff\x00v\x00"])
def test_bad_properties_are_frame_errors(data: bytes) -> None:
    with pytest.raises(FrameError):
        decode_properties(data)


def test_properties_reject_nul_and_non_strings() -> None:
    with pytest.raises(LocalProtocolError):
        encode_properties({"a\x00": "b"})
    with pytest.raises(LocalProtocolError):
        encode_properties({"a": 1})  # type: ignore[dict-item]


def test_uncompressed_frames_carry_the_running_crc() -> None:
    encoder = FrameEncoder()
    first = encoder.encode(1, MessageType.RPY, b"\x00")
    # CRC32 of one zero byte is d202ef8d.
    assert first.hex() == "010100d202ef8d"
    body = b"\x00hello"
    second = encoder.encode(2, MessageType.MSG | FrameFlags.MORE_COMING, body)
    assert second == b"\x02\x40" + body + crc(b"\x00" + body)
    decoder = FrameDecoder()
    assert decoder.decode(first).body == b"\x00"
    decoded = decoder.decode(second)
    assert (decoded.number, decoded.flags, decoded.body) == (2, 0x40, body)
    assert decoded.wire_size == len(body) + 4


def test_compressed_frames_drop_the_deflate_trailer() -> None:
    encoder = FrameEncoder()
    body = b"\x00" + b"compress me, compress me, compress me" * 20
    frame = encoder.encode(3, FrameFlags.COMPRESSED, body)
    reference = zlib.compressobj(zlib.Z_BEST_SPEED, zlib.DEFLATED, -15)
    packed = reference.compress(body) + reference.flush(zlib.Z_SYNC_FLUSH)
    assert packed.endswith(b"\x00\x00\xff\xff")
    # The CRC covers the uncompressed body (spec §3.5).
    assert frame == b"\x03\x08" + packed[:-4] + crc(body)
    # The context carries over: the same data again costs a few bytes.
    again = encoder.encode(4, FrameFlags.COMPRESSED, body)
    assert len(again) < 25 < len(frame)
    decoder = FrameDecoder()
    assert decoder.decode(frame).body == body
    assert decoder.decode(again).body == body
    assert decoder.checksum == encoder.checksum == zlib.crc32(body + body)


def test_ack_frames_have_no_crc() -> None:
    ack = FrameEncoder.encode_ack(
        1, MessageType.ACKRPY | FrameFlags.URGENT | FrameFlags.NO_REPLY, 65508
    )
    assert ack.hex() == "0135e4ff03"  # as Couchbase Lite sent it in blob.jsonl
    assert FrameDecoder().decode(ack).ack_bytes == 65508


def test_error_reply_bytes_match_couchbase_lite() -> None:
    server = BlipCore()
    request = BlipCore()
    request.send_request({"Profile": "getCheckpoint"})
    server.receive_frame(request.frames_to_send()[0])
    server.send_error(1, "HTTP", 404)
    # push-3.jsonl, first s2c frame: ERR #1 {Error-Domain: HTTP, Error-Code: 404}.
    expected = "0102214572726f722d446f6d61696e0048545450004572726f722d436f64650034303400964c4b0b"
    assert server.frames_to_send() == [bytes.fromhex(expected)]


def test_request_bytes_match_couchbase_lite() -> None:
    core = BlipCore()
    core.send_request({"Profile": "getCheckpoint", "client": "cp-dLAAoEueJ1qFcS8i3gGRZkUamAw="})
    expected = (
        "01003d50726f66696c6500676574436865636b706f696e7400636c69656e740063702d644c41"
        "416f4575654a31714663533869336747525a6b55616d41773d00d21ed3fd"
    )
    assert core.frames_to_send() == [bytes.fromhex(expected)]


def test_checksum_mismatch_is_fatal() -> None:
    frame = bytearray(FrameEncoder().encode(1, 0, b"\x00"))
    frame[-1] ^= 1
    with pytest.raises(ChecksumError):
        FrameDecoder().decode(bytes(frame))


def test_invalid_deflate_is_fatal() -> None:
    bad = b"\x01\x08" + b"\xff\xff\xff\xff" + crc(b"")
    with pytest.raises(CompressionError):
        FrameDecoder().decode(bad)


def test_deflate_bomb_is_stopped_without_inflating_it() -> None:
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    packed = deflater.compress(bytes(64 << 20)) + deflater.flush(zlib.Z_SYNC_FLUSH)
    assert len(packed) < 100_000
    frame = b"\x01\x08" + packed[:-4] + b"\x00\x00\x00\x00"
    with pytest.raises(LimitExceededError):
        FrameDecoder(max_inflated=1 << 20).decode(frame)


def test_short_frames_are_fatal() -> None:
    for frame in (b"", b"\x01", b"\x01\x00\x00", b"\x01\x04"):
        with pytest.raises(FatalProtocolError):
            FrameDecoder().decode(frame)
