"""Per-message state: outgoing data waiting to be framed, incoming messages being reassembled."""

from __future__ import annotations

from collections import deque

from engine.blip.frame import FrameFlags, MessageType

__all__ = ["IncomingMessage", "OutgoingMessage"]

_BytesLike = bytes | bytearray | memoryview
# Plain ints: IntFlag arithmetic is slow on the per-frame path.
_MORE = int(FrameFlags.MORE_COMING)
_URGENT = int(FrameFlags.URGENT)
_TYPE_AND_MORE = int(FrameFlags.TYPE_MASK | FrameFlags.MORE_COMING)


class OutgoingMessage:
    """A message being sent: its number, flags and the data not yet framed."""

    __slots__ = (
        "_chunks",
        "bytes_acked",
        "bytes_sent",
        "complete",
        "finished",
        "flags",
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
        self._chunks: deque[memoryview] = deque()
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
        self.write(data)

    @property
    def urgent(self) -> bool:
        return bool(self.flags & _URGENT)

    @property
    def unacked(self) -> int:
        return self.bytes_sent - self.bytes_acked

    @property
    def ready(self) -> bool:
        """Whether a frame can be made now (ignoring flow control)."""
        return not self.finished and (self.pending > 0 or self.complete)

    def write(self, data: _BytesLike) -> None:
        if data:
            self._chunks.append(memoryview(data).cast("B"))
            self.pending += len(data)

    def take(self, size: int) -> _BytesLike:
        """Remove up to ``size`` bytes of data for the next frame."""
        chunks = self._chunks
        if not chunks:
            return b""
        first = chunks[0]
        if len(first) >= size:
            if len(first) == size:
                chunks.popleft()
            else:
                chunks[0] = first[size:]
                first = first[:size]
            self.pending -= len(first)
            return first
        parts: list[memoryview] = []
        room = size
        while chunks and room:
            chunk = chunks[0]
            if len(chunk) <= room:
                parts.append(chunks.popleft())
                room -= len(chunk)
            else:
                parts.append(chunk[:room])
                chunks[0] = chunk[room:]
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
        self.flags = flags & ~_MORE
        #: Bytes of the properties block received so far, until it is complete.
        self.head: bytearray | None = bytearray()
        self.properties: dict[str, str] | None = None
        #: Frame bytes received, released by the consumer and acknowledged (spec §3.7).
        self.received = 0
        self.released = 0
        self.acked = 0
        #: Uncompressed bytes received (properties and body), for the size limit.
        self.size = 0
