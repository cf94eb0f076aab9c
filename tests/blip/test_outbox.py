"""The out-box: round-robin, urgent insertion, begin order and flow control (§3.2, §3.7)."""

from __future__ import annotations

from engine.blip import FrameFlags, MessageType, OutgoingMessage
from engine.blip.outbox import Outbox


def message(name: int, *, urgent: bool = False, started: bool = True) -> OutgoingMessage:
    flags = FrameFlags.URGENT if urgent else 0
    msg = OutgoingMessage(MessageType.MSG, name, flags, b"x" * 100)
    msg.complete = True
    msg.started = started
    return msg


def numbers(outbox: Outbox) -> list[int]:
    return [m.number for m in outbox.messages()]


def requeue(outbox: Outbox, msg: OutgoingMessage) -> None:
    msg.state = "idle"
    outbox.wake(msg)


def test_normal_messages_round_robin() -> None:
    outbox = Outbox()
    for n in (1, 2, 3):
        outbox.add(message(n, started=False))
    order = []
    for _ in range(6):
        msg = outbox.pop()
        assert msg is not None
        order.append(msg.number)
        msg.started = True
        outbox.after_frame(msg)
    assert order == [1, 2, 3, 1, 2, 3]


def test_urgent_goes_after_the_first_normal_when_no_urgent_is_queued() -> None:
    outbox = Outbox()
    for n in (1, 2, 3):
        requeue(outbox, message(n))
    requeue(outbox, message(9, urgent=True))
    assert numbers(outbox) == [1, 9, 2, 3]


def test_urgent_goes_after_the_last_urgent_and_one_normal() -> None:
    outbox = Outbox()
    for msg in (message(1, urgent=True), message(2), message(3), message(4)):
        requeue(outbox, msg)
    requeue(outbox, message(5, urgent=True))
    assert numbers(outbox) == [1, 2, 5, 3, 4]
    requeue(outbox, message(6, urgent=True))
    assert numbers(outbox) == [1, 2, 5, 3, 6, 4]


def test_urgent_after_a_trailing_urgent_goes_last() -> None:
    outbox = Outbox()
    for msg in (message(1), message(2, urgent=True)):
        requeue(outbox, msg)
    requeue(outbox, message(3, urgent=True))
    assert numbers(outbox) == [1, 2, 3]


def test_urgent_into_an_empty_queue() -> None:
    outbox = Outbox()
    outbox.add(message(1, urgent=True, started=False))
    assert numbers(outbox) == [1]


def test_a_new_urgent_message_goes_after_every_unstarted_message() -> None:
    outbox = Outbox()
    requeue(outbox, message(1))
    outbox.add(message(2, started=False))
    outbox.add(message(3, started=False))
    requeue(outbox, message(4))
    outbox.add(message(5, urgent=True, started=False))
    assert numbers(outbox) == [1, 2, 3, 5, 4]
    # Requeued (already begun) urgent messages may pass unstarted ones.
    requeue(outbox, message(6, urgent=True))
    assert numbers(outbox) == [1, 2, 3, 5, 4, 6]


def test_flow_control_suspends_and_an_ack_resumes() -> None:
    outbox = Outbox(max_unacked=1000)
    msg = message(1)
    msg.complete = False
    msg.write(b"y" * 5000)
    outbox.add(msg)
    popped = outbox.pop()
    assert popped is msg
    msg.take(1200)
    msg.bytes_sent = 1204
    outbox.after_frame(msg)
    assert msg.state == "suspended" and not outbox
    msg.bytes_acked = 100
    outbox.wake(msg)
    assert not outbox  # still 1104 unacknowledged
    msg.bytes_acked = 1204
    outbox.wake(msg)
    assert numbers(outbox) == [1]


def test_idle_streaming_message_waits_for_data() -> None:
    outbox = Outbox()
    msg = message(1)
    msg.complete = False
    outbox.add(msg)
    popped = outbox.pop()
    assert popped is msg
    msg.take(1000)
    outbox.after_frame(msg)
    assert msg.state == "idle" and not outbox
    msg.write(b"more")
    outbox.wake(msg)
    assert numbers(outbox) == [1]
    outbox.remove(msg)
    assert not outbox and msg.state == "done"
