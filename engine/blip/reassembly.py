"""Incoming data frames into messages: properties, size limits, events, ACK byte counts."""

from __future__ import annotations

from collections.abc import Callable

from engine.blip.codec import FrameEncoder
from engine.blip.errors import FrameError, LimitExceededError
from engine.blip.events import (
    BodyReceived,
    Event,
    FrameDropped,
    MessageBegun,
    MessageEnded,
    MessageReceived,
)
from engine.blip.frame import MORE_COMING, NO_REPLY, URGENT, MessageType
from engine.blip.limits import BlipLimits
from engine.blip.message import IncomingMessage
from engine.blip.properties import decode_properties
from engine.blip.varint import decode_varint, varint_complete

__all__ = ["ACK_INTERVAL", "Reassembler"]

#: The receiver ACKs a message each time this many more of its bytes arrived (spec §3.7).
ACK_INTERVAL = 50_000

_ACK_FLAGS = URGENT | NO_REPLY
_BytesLike = bytes | bytearray | memoryview
_MSG = MessageType.MSG
#: Called for a frame error: (message type or None, number, error).
OnFrameError = Callable[[MessageType | None, int, FrameError], None]


class Reassembler:
    """Groups incoming MSG/RPY/ERR frames into messages and reports them as events."""

    def __init__(
        self,
        limits: BlipLimits,
        awaiting_reply: set[int],
        owed_replies: set[int],
        on_frame_error: OnFrameError,
    ) -> None:
        self.events: list[Event] = []
        #: ACK frames due, waiting to be sent.
        self.acks: list[bytes] = []
        self._max_message = limits.max_message_size
        self._max_properties = limits.max_properties_size
        # Shared with the core: our requests expecting a reply, requests we must answer.
        self._awaiting_reply = awaiting_reply
        self._owed_replies = owed_replies
        self._on_frame_error = on_frame_error
        self._last_request = 0
        self._requests: dict[int, IncomingMessage] = {}
        self._replies: dict[int, IncomingMessage] = {}

    @property
    def buffered(self) -> int:
        """Bytes held for messages whose properties are still incomplete."""
        heads = (m.head for reg in (self._requests, self._replies) for m in reg.values())
        return sum(len(head) for head in heads if head is not None)

    def clear(self) -> None:
        self.acks.clear()
        self._requests.clear()
        self._replies.clear()

    def release(self, kind: MessageType, number: int, credit: int) -> None:
        """The consumer is done with ``credit`` frame bytes of a message: ACK when due."""
        msg = (self._requests if kind is _MSG else self._replies).get(number)
        if msg is None:
            return
        msg.released += credit
        if msg.released - msg.acked >= ACK_INTERVAL:
            msg.acked = msg.released
            ack = MessageType.ACKMSG if kind is _MSG else MessageType.ACKRPY
            self.acks.append(FrameEncoder.encode_ack(number, int(ack) | _ACK_FLAGS, msg.released))

    def receive(
        self, kind: MessageType, number: int, flags: int, body: bytes, wire_size: int
    ) -> None:
        """One MSG, RPY or ERR frame, already checked and inflated."""
        more = flags & MORE_COMING
        if kind is _MSG:
            registry = self._requests
            msg = registry.get(number)
            if msg is None:
                if number != self._last_request + 1:
                    return self.drop(kind, number, FrameError(f"unexpected request #{number}"))
                self._last_request = number
                if not flags & NO_REPLY:
                    self._owed_replies.add(number)
                if not more:
                    return self._receive_whole(kind, number, flags, body)
                msg = registry[number] = IncomingMessage(kind, number, flags)
        else:
            registry = self._replies
            msg = registry.get(number)
            if msg is None:
                if number not in self._awaiting_reply:
                    return self.drop(kind, number, FrameError(f"unexpected reply #{number}"))
                if not more:
                    self._awaiting_reply.discard(number)
                    return self._receive_whole(kind, number, flags, body)
                msg = registry[number] = IncomingMessage(kind, number, flags)
        if not more:
            del registry[number]
            if kind is not _MSG:
                self._awaiting_reply.discard(number)
        msg.received += wire_size
        msg.size += len(body)
        self._check_size(msg.size)
        data: _BytesLike = body
        if msg.head is not None:
            head = msg.head
            if head:
                head += body
                data = head
            try:
                split = self._split_properties(data, final=not more)
            except FrameError as exc:
                registry.pop(number, None)
                return self.drop(kind, number, exc)
            if split is None:
                if not head:
                    msg.head = bytearray(body)
                self.release(kind, number, wire_size)
                return None
            msg.properties, data = split
            msg.head = None
            if not more:
                self.events.append(
                    MessageReceived(msg.type, number, msg.flags, msg.properties, bytes(data))
                )
                return None
            self.events.append(MessageBegun(msg.type, number, msg.flags, msg.properties))
        if data:
            self.events.append(BodyReceived(msg.type, number, bytes(data), wire_size))
        else:
            self.release(kind, number, wire_size)
        if not more:
            self.events.append(MessageEnded(msg.type, number))
        return None

    def _receive_whole(self, kind: MessageType, number: int, flags: int, body: bytes) -> None:
        """A message in a single frame: no per-message state needed."""
        rest: _BytesLike
        self._check_size(len(body))
        try:
            if body and body[0] < 0x80 and len(body) > body[0] <= self._max_properties:
                # The common case, inlined: a properties block shorter than 128 bytes.
                end = body[0] + 1
                properties = decode_properties(body[1:end]) if end > 1 else {}
                rest = body[end:]
            else:
                split = self._split_properties(body, final=True)
                assert split is not None
                properties, rest = split
        except FrameError as exc:
            return self.drop(kind, number, exc)
        self.events.append(MessageReceived(kind, number, flags, properties, bytes(rest)))
        return None

    def _check_size(self, size: int) -> None:
        if size > self._max_message:
            raise LimitExceededError(f"incoming message exceeds {self._max_message} bytes")

    def _split_properties(
        self, data: _BytesLike, *, final: bool
    ) -> tuple[dict[str, str], _BytesLike] | None:
        """Properties and the body after them; None if more frames must come first."""
        if data and data[0] < 0x80:
            length, pos = data[0], 1
        elif varint_complete(data):
            length, pos = decode_varint(data)
        elif final:
            raise FrameError("message ends inside the properties length")
        else:
            return None
        if length > self._max_properties:
            raise LimitExceededError(f"properties of {length} bytes exceed {self._max_properties}")
        end = pos + length
        if len(data) < end:
            if final:
                raise FrameError("properties length is longer than the message")
            return None
        if isinstance(data, bytes):
            return (decode_properties(data[pos:end]) if length else {}), data[end:]
        view = memoryview(data)
        return (decode_properties(view[pos:end]) if length else {}), view[end:]

    def drop(self, kind: MessageType | None, number: int, error: FrameError) -> None:
        """Report a frame error (spec §3.8): the frame, and the message it began, are gone."""
        self.events.append(FrameDropped(kind, number, error))
        self._on_frame_error(kind, number, error)
