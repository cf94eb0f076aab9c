"""The out-box: which message sends its next frame (spec §3.2) and ACK flow control (§3.7)."""

from __future__ import annotations

from engine.blip.frame import URGENT
from engine.blip.message import FRAME_SIZE, URGENT_FRAME_SIZE, OutgoingMessage

__all__ = ["FRAME_SIZE", "MAX_UNACKED", "URGENT_FRAME_SIZE", "Outbox"]

#: A message stops sending while more than this many of its bytes are unacknowledged.
MAX_UNACKED = 128_000


class Outbox:
    """Round-robin queue with the urgent insertion rules; parks idle and suspended messages."""

    __slots__ = ("_queue", "max_unacked")

    def __init__(self, max_unacked: int = MAX_UNACKED) -> None:
        self._queue: list[OutgoingMessage] = []
        self.max_unacked = max_unacked

    def __len__(self) -> int:
        return len(self._queue)

    def __bool__(self) -> bool:
        return bool(self._queue)

    def messages(self) -> list[OutgoingMessage]:
        """The queued messages, head first."""
        return list(self._queue)

    def add(self, msg: OutgoingMessage) -> None:
        """Queue a new message: it must begin after every message not yet begun."""
        if msg.flags & URGENT:
            self._insert(msg, first_time=True)
        else:
            msg.state = "queued"
            self._queue.append(msg)

    def pop(self) -> OutgoingMessage | None:
        """Take the message at the head; the caller frames it, then calls :meth:`after_frame`."""
        if not self._queue:
            return None
        msg = self._queue.pop(0)
        msg.state = "sending"
        return msg

    def after_frame(self, msg: OutgoingMessage) -> None:
        """Put a message back after one of its frames went out, unless it must wait."""
        if msg.finished:
            msg.state = "done"
        elif msg.unacked > self.max_unacked:
            msg.state = "suspended"
        elif not msg.ready:
            msg.state = "idle"
        else:
            self._insert(msg, first_time=False)

    def wake(self, msg: OutgoingMessage) -> None:
        """An idle message got data or a suspended one got an ACK: requeue it if it may send."""
        if msg.state in ("idle", "suspended") and msg.ready and msg.unacked <= self.max_unacked:
            self._insert(msg, first_time=False)

    def remove(self, msg: OutgoingMessage) -> None:
        if msg.state == "queued":
            self._queue.remove(msg)
        msg.state = "done"

    def clear(self) -> None:
        for msg in self._queue:
            msg.state = "done"
        self._queue.clear()

    def _insert(self, msg: OutgoingMessage, *, first_time: bool) -> None:
        queue = self._queue
        msg.state = "queued"
        if not msg.urgent or not queue:
            # Normal messages go to the tail: round-robin (spec §3.2).
            queue.append(msg)
            return
        # An urgent message goes after the last urgent one, then after the first normal
        # message following it (so normal ones are not starved); with no urgent message
        # queued, after the first normal message.
        index = 0
        for i in range(len(queue) - 1, -1, -1):
            if queue[i].urgent:
                index = i + 1
                break
        index = min(index + 1, len(queue))
        if first_time:
            # Messages are begun in order: after any message not yet started.
            for i in range(len(queue) - 1, index - 1, -1):
                if not queue[i].started:
                    index = i + 1
                    break
        queue.insert(index, msg)
