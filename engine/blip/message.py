"""Per-message state: outgoing data waiting to be framed, incoming messages being reassembled."""

from __future__ import annotations

from collections import deque

from engine.blip.frame import MORE_COMING, TYPE_MASK, URGENT, MessageType

#: Bytes of message data per frame (before compression).
FRAME_SIZE = 16384
URGENT_FRAME_SIZE = 4096

__all__ = ["FRAME_SIZE", "URGENT_FRAME_SIZE", "IncomingMessage", "OutgoingMessage"]

_BytesLike = bytes | bytearray | memoryview
_TYPE_AND_MORE = TYPE_MASK | MORE_COMING


class OutgoingMessage:
    """A message being sent: its number, flags and the data not yet framed."""

    __slots__ = (
        "_chunks",
        "bytes_acked",
        "bytes_sent",
        "complete",
        "finished",
        "flags",
        "frame_size",
        "number",
        "pending",
        "started",
        "state",
        "type",
    )

    def __init__(self, type: MessageType, number: int, flags: int, data: _BytesLike) -> None:
        self.type = type
        self.number = number
        #: Type and message flags; MORE_COMING is added per frame.
        self.flags = (flags & ~_TYPE_AND_MORE) | int(type)
        #: Message data per frame (spec §3.2: typically 16k, or 4k for urgent messages).
        self.frame_size = URGENT_FRAME_SIZE if flags & URGENT else FRAME_SIZE
        self._chunks: deque[_BytesLike] = deque()
        #: Bytes written but not yet framed.
        self.pending = 0
        #: True once no more data will be written.
        self.complete = False
        #: True once the final frame has been framed.
        self.finished = False
        self.started = False
        #: Frame bytes after the header, CRC included, as ACKs count them.
        self.bytes_sent = 0
        self.bytes_acked = 0
        #: Where the outbox keeps it: "queued", "idle" (no data), "suspended" (flow control).
        self.state = "new"
        if data:
            self.write(data)

    @property
    def urgent(self) -> bool:
        return bool(self.flags & URGENT)

    @property
    def unacked(self) -> int:
        return self.bytes_sent - self.bytes_acked

    @property
    def ready(self) -> bool:
        """Whether a frame can be made now (ignoring flow control)."""
        return not self.finished and (self.pending > 0 or self.complete)

    def write(self, data: _BytesLike) -> None:
        if data:
            if isinstance(data, bytearray):
                data = bytes(data)  # the caller may reuse its buffer
            self._chunks.append(data)
            self.pending += len(data)

    def take(self, size: int) -> _BytesLike:
        """Remove up to ``size`` bytes of data for the next frame."""
        chunks = self._chunks
        if not chunks:
            return b""
        first = chunks[0]
        if len(first) <= size and len(chunks) == 1:
            chunks.clear()
            self.pending = 0
            return first
        if len(first) >= size:
            if len(first) == size:
                chunks.popleft()
            else:
                view = memoryview(first)
                chunks[0] = view[size:]
                first = view[:size]
            self.pending -= size
            return first
        parts: list[_BytesLike] = []
        room = size
        while chunks and room:
            chunk = chunks[0]
            if len(chunk) <= room:
                parts.append(chunks.popleft())
                room -= len(chunk)
            else:
                view = memoryview(chunk)
                parts.append(view[:room])
                chunks[0] = view[room:]
                room = 0
        self.pending -= size - room
        return b"".join(parts)


class IncomingMessage:
    """A message being received: its properties so far and flow-control counters."""

    __slots__ = (
        "acked",
        "flags",
        "head",
        "number",
        "properties",
        "received",
        "released",
        "size",
        "type",
    )

    def __init__(self, type: MessageType, number: int, flags: int) -> None:
        self.type = type
        self.number = number
        self.flags = flags & ~MORE_COMING
        #: Bytes of the properties block received so far, until it is complete.
        self.head: bytearray | None = bytearray()
        self.properties: dict[str, str] | None = None
        #: Frame bytes received, released by the consumer and acknowledged (spec §3.7).
        self.received = 0
        self.released = 0
        self.acked = 0
        #: Uncompressed bytes received (properties and body), for the size limit.
        self.size = 0
