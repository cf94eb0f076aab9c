"""Property tests: random messages through two cores arrive intact, begun in order, within the
flow-control window; random bytes make the decoder raise only documented errors."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.blip import (
    FRAME_SIZE,
    MAX_UNACKED,
    BlipCore,
    BlipLimits,
    CoreState,
    FatalProtocolError,
    FrameEncoder,
    MessageType,
    OutgoingMessage,
)
from tests.blip.pairs import Received

MSG, RPY = MessageType.MSG, MessageType.RPY
#: A frame's wire size is at most its data, the CRC, and deflate's worst-case overhead.
MAX_FRAME_WIRE = FRAME_SIZE + 4 + 64

messages = st.lists(
    st.tuples(
        st.one_of(  # body size, often several frames
            st.integers(0, 3000),
            st.integers(0, 300).map(lambda k: k * 1000 + 17),
            st.sampled_from([FRAME_SIZE - 1, FRAME_SIZE, 2 * FRAME_SIZE + 1, 300_000]),
        ),
        st.booleans(),  # urgent
        st.booleans(),  # compressed
        st.booleans(),  # no_reply
        st.integers(0, 2**32 - 1),  # content seed
    ),
    min_size=1,
    max_size=8,
)


def make_body(size: int, seed: int) -> bytes:
    pattern = random.Random(seed).randbytes(65_521)
    return (pattern * (size // len(pattern) + 1))[:size]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=messages, batches=st.lists(st.integers(1, 5), min_size=1, max_size=20))
def test_messages_arrive_intact_in_begin_order_within_the_window(
    specs: list[tuple[int, bool, bool, bool, int]], batches: list[int]
) -> None:
    client, server = BlipCore(name="client"), BlipCore(name="server")
    at_server, at_client = Received(), Received()
    sent: list[OutgoingMessage] = []
    bodies: dict[int, bytes] = {}
    for size, urgent, compressed, no_reply, seed in specs:
        body = make_body(size, seed)
        msg = client.send_request(
            {"Profile": "p", "seed": str(seed)},
            body,
            urgent=urgent,
            compressed=compressed,
            no_reply=no_reply,
        )
        sent.append(msg)
        bodies[msg.number] = body
    replies: list[OutgoingMessage] = []
    step = handled = 0
    while True:
        # Interleave the two directions in random-sized batches of frames.
        batch = batches[step % len(batches)]
        step += 1
        moved = 0
        for frame in client.frames_to_send(max_frames=batch):
            moved += 1
            server.receive_frame(frame)
            at_server.absorb(server, server.events_received())
        for msg in sent + replies:
            assert msg.unacked <= MAX_UNACKED + MAX_FRAME_WIRE
        for _, number, flags, _, body in at_server.complete[handled:]:
            handled += 1
            if not flags & 0x20:
                reply = server.send_reply(
                    number,
                    {"len": str(len(body))},
                    body[::2],
                    urgent=bool(flags & 0x10),
                    compressed=bool(flags & 0x08),
                )
                replies.append(reply)
        for frame in server.frames_to_send(max_frames=batch):
            moved += 1
            client.receive_frame(frame)
            at_client.absorb(client, client.events_received())
        if not moved:
            break
    assert server.state is client.state is CoreState.OPEN
    # Every request arrived intact; requests began in number order (spec §2).
    assert [number for kind, number in at_server.begun] == list(range(1, len(specs) + 1))
    assert sorted(m[1] for m in at_server.complete) == list(range(1, len(specs) + 1))
    for kind, number, _, props, body in at_server.complete:
        assert kind is MSG and props["Profile"] == "p"
        assert body == bodies[number]
    # Every request that wanted a reply got it.
    wanted = {m.number for m in sent if not m.flags & 0x20}
    assert {m[1] for m in at_client.complete} == wanted
    for kind, number, _, props, body in at_client.complete:
        assert kind is RPY and props == {"len": str(len(bodies[number]))}
        assert body == bodies[number][::2]
    assert client.awaiting_replies == frozenset()


FUZZ_LIMITS = BlipLimits(
    max_message_size=100_000, max_properties_size=1000, max_inflated_frame_size=100_000
)


def feed(core: BlipCore, frames: list[bytes]) -> None:
    """Feed frames; only documented protocol errors may escape, and memory stays bounded."""
    for frame in frames:
        try:
            core.receive_frame(frame)
        except FatalProtocolError:
            assert core.state is CoreState.CLOSED
        core.events_received()
        core.frames_to_send()
        assert core.incoming_buffered <= FUZZ_LIMITS.max_properties_size + 2 * len(frame) + 16


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_whole_and_split_at_every_position(data: bytes) -> None:
    feed(BlipCore(FUZZ_LIMITS), [data])
    for cut in range(len(data) + 1):
        feed(BlipCore(FUZZ_LIMITS), [data[:cut], data[cut:]])


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 300), st.integers(0, 0x7F), st.binary(max_size=40)),
        max_size=8,
    )
)
def test_frames_with_valid_crcs_and_random_content(
    frames: list[tuple[int, int, bytes]],
) -> None:
    encoder = FrameEncoder()
    wire = [encoder.encode(number, flags, body) for number, flags, body in frames]
    feed(BlipCore(FUZZ_LIMITS), wire)
    joined = b"".join(wire)
    for cut in range(len(joined) + 1):
        feed(BlipCore(FUZZ_LIMITS), [joined[:cut], joined[cut:]])
