"""The sans-I/O BLIP connection: frames in, events out; frames out, messages in. No I/O."""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from typing import NoReturn

from engine.blip.codec import FrameDecoder, FrameEncoder
from engine.blip.errors import (
    BLIP_DOMAIN,
    BlipErrorCode,
    FatalProtocolError,
    FrameError,
    LimitExceededError,
    LocalProtocolError,
)
from engine.blip.events import (
    Event,
)
from engine.blip.frame import (
    COMPRESSED,
    DATA_TYPES,
    MORE_COMING,
    NO_REPLY,
    URGENT,
    MessageType,
    encode_header,
)
from engine.blip.limits import BlipLimits
from engine.blip.message import OutgoingMessage
from engine.blip.outbox import MAX_UNACKED, URGENT_FRAME_SIZE, Outbox
from engine.blip.properties import encode_properties
from engine.blip.reassembly import Reassembler

__all__ = ["BlipCore", "CoreState"]

logger = logging.getLogger(__name__)

_MORE = MORE_COMING
_NO_REPLY = NO_REPLY
_ACK_FLAGS = URGENT | NO_REPLY
_BytesLike = bytes | bytearray | memoryview
_MSG, _RPY, _ERR = MessageType.MSG, MessageType.RPY, MessageType.ERR


class CoreState(enum.IntEnum):
    """Lifecycle of a BLIP connection."""

    OPEN = 1
    CLOSED = 2


class BlipCore:
    """One BLIP connection's protocol state, driven by whole frames (one per WebSocket message)."""

    def __init__(self, limits: BlipLimits | None = None, *, name: str = "") -> None:
        self.limits = limits or BlipLimits()
        self.name = name
        self._state = CoreState.OPEN
        self._encoder = FrameEncoder()
        self._decoder = FrameDecoder(self.limits.max_inflated_frame_size)
        self._max_frame_size = self.limits.max_frame_size
        self._outbox = Outbox(MAX_UNACKED)
        self._next_request = 1
        # Outgoing messages still being framed, by number, for incoming ACKs.
        self._out_requests: dict[int, OutgoingMessage] = {}
        self._out_replies: dict[int, OutgoingMessage] = {}
        # Our requests still waiting for (the rest of) their reply.
        self._awaiting_reply: set[int] = set()
        # Incoming requests we owe a reply to.
        self._owed_replies: set[int] = set()
        self._inbox = Reassembler(
            self.limits, self._awaiting_reply, self._owed_replies, self._frame_error
        )

    # -- state ---------------------------------------------------------------------------------

    @property
    def state(self) -> CoreState:
        return self._state

    @state.setter
    def state(self, value: CoreState) -> None:
        if value is not self._state:
            logger.debug("blip %s: %s -> %s", self.name, self._state.name, value.name)
            self._state = value

    def close(self) -> None:
        """Stop everything: nothing more is sent or accepted."""
        self.state = CoreState.CLOSED
        self._outbox.clear()
        self._inbox.clear()
        self._out_requests.clear()
        self._out_replies.clear()

    @property
    def incoming_buffered(self) -> int:
        """Bytes held for incoming messages whose properties are still incomplete."""
        return self._inbox.buffered

    @property
    def awaiting_replies(self) -> frozenset[int]:
        """Numbers of our requests whose reply has not fully arrived."""
        return frozenset(self._awaiting_reply)

    # -- sending -------------------------------------------------------------------------------

    def send_request(
        self,
        properties: Mapping[str, str] | bytes | None = None,
        body: _BytesLike = b"",
        *,
        urgent: bool = False,
        compressed: bool = False,
        no_reply: bool = False,
        streaming: bool = False,
    ) -> OutgoingMessage:
        """Queue a request; with ``streaming`` more body follows via :meth:`write_body`.

        ``properties`` may be a block already made by :func:`encode_properties`.
        """
        if self._state is not CoreState.OPEN:
            self._check_open()
        flags = (
            (URGENT if urgent else 0)
            | (COMPRESSED if compressed else 0)
            | (_NO_REPLY if no_reply else 0)
        )
        number = self._next_request
        self._next_request += 1
        if not no_reply:
            self._awaiting_reply.add(number)
        return self._enqueue(_MSG, number, flags, properties, body, streaming)

    def send_reply(
        self,
        number: int,
        properties: Mapping[str, str] | bytes | None = None,
        body: _BytesLike = b"",
        *,
        urgent: bool = False,
        compressed: bool = False,
        streaming: bool = False,
        error: bool = False,
    ) -> OutgoingMessage:
        """Queue the reply (RPY, or ERR with ``error``) to incoming request ``number``."""
        self._check_open()
        if number not in self._owed_replies:
            raise LocalProtocolError(f"request #{number} is unknown, no-reply or already answered")
        self._owed_replies.discard(number)
        kind = _ERR if error else _RPY
        return self._enqueue(kind, number, _flags(urgent, compressed), properties, body, streaming)

    def send_error(
        self,
        number: int,
        domain: str,
        code: int,
        message: str = "",
        properties: Mapping[str, str] | None = None,
    ) -> OutgoingMessage:
        """Queue an error reply: Error-Domain, Error-Code, the message as body (spec §1.2)."""
        props = {"Error-Domain": domain, "Error-Code": str(int(code)), **(properties or {})}
        return self.send_reply(number, props, message.encode(), error=True)

    def write_body(self, msg: OutgoingMessage, data: _BytesLike) -> None:
        """Append body data to a streaming message."""
        if msg.complete:
            raise LocalProtocolError(f"message #{msg.number} body already ended")
        self._check_open()
        msg.write(data)
        self._outbox.wake(msg)

    def end_body(self, msg: OutgoingMessage) -> None:
        """Mark a streaming message's body complete."""
        if not msg.complete and self._state is CoreState.OPEN:
            msg.complete = True
            self._outbox.wake(msg)

    def _enqueue(
        self,
        kind: MessageType,
        number: int,
        flags: int,
        properties: Mapping[str, str] | bytes | None,
        body: _BytesLike,
        streaming: bool,
    ) -> OutgoingMessage:
        head = properties if isinstance(properties, bytes) else encode_properties(properties)
        if not streaming and len(head) + len(body) <= URGENT_FRAME_SIZE:
            # A small message is joined up front: one chunk, one frame, no join later.
            msg = OutgoingMessage(kind, number, flags, head + body if body else head)
        else:
            msg = OutgoingMessage(kind, number, flags, head)
            msg.write(body)
        msg.complete = not streaming
        if streaming or msg.pending > msg.frame_size:
            # Only multi-frame messages can be ACKed.
            (self._out_requests if kind is _MSG else self._out_replies)[number] = msg
        self._outbox.add(msg)
        return msg

    def _check_open(self) -> None:
        if self._state is not CoreState.OPEN:
            raise LocalProtocolError("the BLIP connection is closed")

    def acks_to_send(self) -> list[bytes]:
        """Only the ACK frames that are due: they may jump ahead of everything else."""
        inbox = self._inbox
        acks = inbox.acks
        inbox.acks = []
        return acks

    @property
    def wants_to_send(self) -> bool:
        """Whether :meth:`frames_to_send` would return anything."""
        return bool(self._inbox.acks) or bool(self._outbox)

    def frames_to_send(self, max_frames: int = 64, max_bytes: int = 256 << 10) -> list[bytes]:
        """The next frames to transmit, in order; ACKs first."""
        inbox = self._inbox
        frames = inbox.acks
        inbox.acks = []
        outbox = self._outbox
        encode = self._encoder.encode_after
        total = 0
        while len(frames) < max_frames and total < max_bytes:
            msg = outbox.pop()
            if msg is None:
                break
            body = msg.take(msg.frame_size)
            flags = msg.flags
            if msg.complete and not msg.pending:
                msg.finished = True
                registry = self._out_requests if msg.type is _MSG else self._out_replies
                registry.pop(msg.number, None)
            else:
                flags |= _MORE
            header = encode_header(msg.number, flags)
            frame = encode(header, flags, body)
            msg.started = True
            msg.bytes_sent += len(frame) - len(header)
            outbox.after_frame(msg)
            frames.append(frame)
            total += len(frame)
        return frames

    # -- receiving -----------------------------------------------------------------------------

    def events_received(self) -> list[Event]:
        """Events produced by the frames received since the last call."""
        inbox = self._inbox
        events = inbox.events
        inbox.events = []
        return events

    def receive_frame(self, frame: _BytesLike) -> None:
        """Process one incoming frame; a fatal error closes the core and is raised."""
        if self._state is not CoreState.OPEN:
            return
        try:
            if len(frame) > self._max_frame_size:
                raise LimitExceededError(
                    f"frame of {len(frame)} bytes exceeds {self.limits.max_frame_size}"
                )
            decoded = self._decoder.decode(frame)
            kind = decoded.flags & 0x07
            if kind <= MessageType.ERR:
                self._inbox.receive(
                    DATA_TYPES[kind],
                    decoded.number,
                    decoded.flags,
                    decoded.body,
                    decoded.wire_size,
                )
            elif kind == MessageType.ACKMSG or kind == MessageType.ACKRPY:
                self._receive_ack(kind == MessageType.ACKMSG, decoded.number, decoded.ack_bytes)
            else:
                error = FrameError(f"unknown message type {kind}")
                self._inbox.drop(None, decoded.number, error)
        except FatalProtocolError:
            self.close()
            raise

    def receive_text(self) -> NoReturn:
        """A text WebSocket message arrived: a fatal error (spec §3.1.1)."""
        error = FatalProtocolError("received a text WebSocket message; BLIP uses binary only")
        error.close_code = 1003
        self.close()
        raise error

    def release(self, kind: MessageType, number: int, credit: int) -> None:
        """The consumer is done with ``credit`` frame bytes of a message: ACK when due."""
        if self._state is CoreState.OPEN:
            self._inbox.release(kind, number, credit)

    def _receive_ack(self, of_request: bool, number: int, count: int) -> None:
        # ACKMSG acknowledges one of our requests, ACKRPY one of our replies.
        msg = (self._out_requests if of_request else self._out_replies).get(number)
        if msg is not None and count > msg.bytes_acked:
            msg.bytes_acked = min(count, msg.bytes_sent)
            self._outbox.wake(msg)

    def _frame_error(self, kind: MessageType | None, number: int, error: FrameError) -> None:
        logger.warning("blip %s: dropped a frame: %s", self.name, error)
        if kind is _MSG and number in self._owed_replies:
            # The sender would wait forever for a reply to a request we could not read.
            self.send_error(number, BLIP_DOMAIN, BlipErrorCode.BAD_REQUEST, str(error))
        elif kind is not None and kind is not _MSG and number in self._awaiting_reply:
            self._awaiting_reply.discard(number)


def _flags(urgent: bool, compressed: bool) -> int:
    return (URGENT if urgent else 0) | (COMPRESSED if compressed else 0)
