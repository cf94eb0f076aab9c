"""The sans-I/O core: reassembly, replies, frame errors, fatal errors, limits, ACK flow control."""

from __future__ import annotations

import zlib

import pytest

from engine.blip import (
    ACK_INTERVAL,
    FRAME_SIZE,
    MAX_UNACKED,
    URGENT_FRAME_SIZE,
    BlipCore,
    BlipLimits,
    CoreState,
    FatalProtocolError,
    FrameDropped,
    FrameEncoder,
    FrameFlags,
    LimitExceededError,
    LocalProtocolError,
    MessageType,
    decode_varint,
    encode_varint,
)
from engine.blip.frame import decode_header
from tests.blip.pairs import Received, transfer

MSG, RPY, ERR = MessageType.MSG, MessageType.RPY, MessageType.ERR


def test_request_and_reply_round_trip() -> None:
    client, server = BlipCore(name="client"), BlipCore(name="server")
    at_server, at_client = Received(), Received()
    msg = client.send_request({"Profile": "echo", "x": "1"}, b"body", urgent=True)
    assert msg.number == 1
    transfer(client, server, at_server)
    assert at_server.complete == [
        (MSG, 1, FrameFlags.URGENT, {"Profile": "echo", "x": "1"}, b"body")
    ]
    server.send_reply(1, {"ok": "yes"}, b"back")
    transfer(server, client, at_client)
    assert at_client.complete == [(RPY, 1, RPY, {"ok": "yes"}, b"back")]
    assert client.awaiting_replies == frozenset()
    # A request can be answered once only.
    with pytest.raises(LocalProtocolError):
        server.send_reply(1)


def test_no_reply_requests_cannot_be_answered() -> None:
    client, server = BlipCore(), BlipCore()
    client.send_request({"Profile": "note"}, no_reply=True)
    assert client.awaiting_replies == frozenset()
    got = Received()
    transfer(client, server, got)
    assert got.complete[0][2] == FrameFlags.NO_REPLY
    with pytest.raises(LocalProtocolError):
        server.send_reply(1)


def test_error_reply_frames() -> None:
    client, server = BlipCore(), BlipCore()
    client.send_request({"Profile": "x"})
    transfer(client, server, Received())
    server.send_error(1, "HTTP", 409, "conflict", {"rev": "2-a"})
    got = Received()
    transfer(server, client, got)
    props = {"Error-Domain": "HTTP", "Error-Code": "409", "rev": "2-a"}
    assert got.complete == [(ERR, 1, ERR, props, b"conflict")]


def test_multi_frame_message_with_streamed_body() -> None:
    client, server = BlipCore(), BlipCore()
    msg = client.send_request({"Profile": "up"}, b"a" * 10, streaming=True)
    got = Received()
    transfer(client, server, got)
    assert got.begun == [(MSG, 1)] and not got.complete
    assert client.frames_to_send() == []  # waiting for more data
    client.write_body(msg, b"b" * (FRAME_SIZE + 5))
    client.end_body(msg)
    transfer(client, server, got)
    assert got.complete[0][4] == b"a" * 10 + b"b" * (FRAME_SIZE + 5)
    with pytest.raises(LocalProtocolError):
        client.write_body(msg, b"late")


def test_properties_spanning_frames() -> None:
    client, server = BlipCore(), BlipCore()
    big = "v" * (FRAME_SIZE * 2)
    client.send_request({"Profile": "p", "big": big}, b"tail")
    got = Received()
    assert transfer(client, server, got) == 3
    assert got.complete == [(MSG, 1, 0, {"Profile": "p", "big": big}, b"tail")]
    assert server.incoming_buffered == 0


def test_frame_errors_drop_the_frame_and_answer_400() -> None:
    encoder = FrameEncoder()
    server = BlipCore()
    got = Received()
    # Request #1 with properties that do not end with NUL.
    server.receive_frame(encoder.encode(1, 0, b"\x03abc"))
    # Request #5 when #2 is next; an unknown type 3; a reply to nothing.
    server.receive_frame(encoder.encode(5, 0, b"\x00"))
    server.receive_frame(encoder.encode(2, 3, b"\x00"))
    server.receive_frame(encoder.encode(9, MessageType.RPY, b"\x00"))
    # Properties length longer than the message.
    server.receive_frame(encoder.encode(2, 0, b"\x09ab\x00"))
    got.absorb(server, server.events_received())
    assert [(d.type, d.number) for d in got.dropped] == [
        (MSG, 1),
        (MSG, 5),
        (None, 2),
        (RPY, 9),
        (MSG, 2),
    ]
    assert all(isinstance(d, FrameDropped) for d in got.dropped)
    assert server.state is CoreState.OPEN
    # The requests that wanted a reply get BLIP 400 errors.
    answers = server.frames_to_send()
    assert [decode_header(frame)[:2] for frame in answers] == [(1, ERR), (2, ERR)]
    assert b"Error-Code\x00400\x00" in answers[0]
    # A frame of an already completed request is dropped too.
    server.receive_frame(encoder.encode(3, 0, b"\x00"))
    server.receive_frame(encoder.encode(3, 0, b"\x00"))
    events = server.events_received()
    assert isinstance(events[-1], FrameDropped)
    assert server.state is CoreState.OPEN


def test_fatal_error_closes_the_core() -> None:
    server = BlipCore()
    frame = bytearray(FrameEncoder().encode(1, 0, b"\x00"))
    frame[-1] ^= 0xFF
    with pytest.raises(FatalProtocolError) as info:
        server.receive_frame(bytes(frame))
    assert info.value.close_code == 1002
    assert server.state is CoreState.CLOSED
    with pytest.raises(LocalProtocolError):
        server.send_request({"Profile": "x"})
    server.receive_frame(b"ignored once closed")


def test_text_message_is_fatal() -> None:
    core = BlipCore()
    with pytest.raises(FatalProtocolError) as info:
        core.receive_text()
    assert info.value.close_code == 1003
    assert core.state is CoreState.CLOSED


@pytest.mark.parametrize(
    ("limits", "props", "body"),
    [
        (BlipLimits(max_message_size=50_000), {}, b"x" * 60_000),
        (BlipLimits(max_properties_size=100), {"k": "v" * 200}, b""),
        (BlipLimits(max_frame_size=1000), {}, b"x" * 2000),
    ],
)
def test_limits_close_the_connection(
    limits: BlipLimits, props: dict[str, str], body: bytes
) -> None:
    client, server = BlipCore(), BlipCore(limits)
    client.send_request(props, body)
    frames = client.frames_to_send()
    if limits.max_frame_size == 1000:
        frames = [FrameEncoder().encode(1, 0, b"\x00" + body)]
    with pytest.raises(LimitExceededError) as info:
        for frame in frames:
            server.receive_frame(frame)
    assert info.value.close_code == 1009
    assert server.state is CoreState.CLOSED


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        BlipLimits(max_message_size=0)


def test_acks_every_50000_bytes_and_sender_stops_past_128000() -> None:
    client, server = BlipCore(), BlipCore()
    msg = client.send_request({"Profile": "big"}, bytes(1_000_000))
    got = Received()
    # Without releasing, the server sends no ACK and the client stops after ~128 KB.
    frames = client.frames_to_send(max_frames=1000)
    for frame in frames:
        server.receive_frame(frame)
        got.absorb(server, server.events_received(), release=False)
    assert MAX_UNACKED < msg.unacked <= MAX_UNACKED + FRAME_SIZE + 8
    assert client.frames_to_send() == []
    assert not server.wants_to_send
    # Releasing everything received sends one ACK with the byte count so far.
    server.release(MSG, 1, msg.bytes_sent)
    (ack,) = server.frames_to_send()
    number, flags, pos = decode_header(ack)
    assert (number, flags) == (1, MessageType.ACKMSG | FrameFlags.URGENT | FrameFlags.NO_REPLY)
    assert ack[pos:] == bytes.fromhex(format_varint(msg.bytes_sent))
    client.receive_frame(ack)
    assert msg.unacked == 0
    # From then on the receiver ACKs every 50,000 bytes and the whole message gets through.
    while transfer(client, server, got) or transfer(server, client, Received()):
        assert msg.unacked <= MAX_UNACKED + FRAME_SIZE + 8
    assert got.complete[0][4] == bytes(1_000_000)


def format_varint(value: int) -> str:
    return encode_varint(value).hex()


def test_ack_interval_counts_frame_bytes_after_the_header() -> None:
    client, server = BlipCore(), BlipCore()
    client.send_request({}, bytes(200_000))
    acks: list[int] = []
    got = Received()
    for frame in client.frames_to_send(max_frames=1000):
        server.receive_frame(frame)
        got.absorb(server, server.events_received())
        for ack in server.frames_to_send():
            _, _, pos = decode_header(ack)
            acks.append(decode_varint(ack, pos)[0])
    # Each full frame counts FRAME_SIZE body bytes plus its 4-byte CRC; three frames are
    # under 50,000 bytes, four are over. The sender then stops (no ACK delivered to it).
    wire = FRAME_SIZE + 4
    assert 3 * wire < ACK_INTERVAL < 4 * wire
    assert acks == [4 * wire, 8 * wire]


def test_compressed_multi_frame_message() -> None:
    client, server = BlipCore(), BlipCore()
    body = b"".join(i.to_bytes(4, "big") for i in range(50_000))
    client.send_request({"Profile": "z"}, body, compressed=True)
    got = Received()
    while transfer(client, server, got) or transfer(server, client, Received()):
        pass
    assert got.complete[0][4] == body
    assert got.complete[0][2] & FrameFlags.COMPRESSED


def test_decoding_matches_encoding_across_many_frames() -> None:
    encoder = FrameEncoder()
    frames = [encoder.encode(n, 0, b"\x00" + bytes([n]) * n) for n in range(1, 50)]
    server = BlipCore()
    for frame in frames:
        server.receive_frame(frame)
    events = server.events_received()
    assert len(events) == 49
    assert zlib.crc32(b"".join(b"\x00" + bytes([n]) * n for n in range(1, 50))) == (
        encoder.checksum
    )


def test_frames_are_16k_or_4k_for_urgent_messages() -> None:
    client = BlipCore()
    client.send_request(None, bytes(40_000))
    client.send_request(None, bytes(10_000), urgent=True)
    sizes: dict[int, list[int]] = {1: [], 2: []}
    for frame in client.frames_to_send(max_frames=100):
        number, _, pos = decode_header(frame)
        sizes[number].append(len(frame) - pos - 4)
    assert sizes[1] == [FRAME_SIZE, FRAME_SIZE, 40_001 - 2 * FRAME_SIZE]
    assert sizes[2] == [URGENT_FRAME_SIZE, URGENT_FRAME_SIZE, 10_001 - 2 * URGENT_FRAME_SIZE]


def test_urgent_message_begins_in_order_then_gets_every_other_frame() -> None:
    client = BlipCore()
    for _ in range(3):
        client.send_request(None, bytes(100_000))
    client.send_request(None, bytes(20_000), urgent=True)  # five 4 KB frames
    order = [decode_header(f)[0] for f in client.frames_to_send(max_frames=100)]
    # #4 is begun after #1-#3 (spec §2); requeued, it goes after the first normal message.
    assert order[:12] == [1, 2, 3, 4, 1, 4, 2, 4, 3, 4, 1, 4]
    assert 4 not in order[12:]
    assert sorted(set(order[12:])) == [1, 2, 3]
