"""Routing incoming messages: requests to their handlers, replies to the requests awaiting them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from engine.blip.core import BlipCore
from engine.blip.errors import BLIP_DOMAIN, BlipError, BlipErrorCode
from engine.blip.events import BodyReceived, Event, FrameDropped, MessageBegun, MessageReceived
from engine.blip.frame import NO_REPLY, MessageType
from engine.blip.incoming import (
    BodyStream,
    Handler,
    IncomingRequest,
    Response,
    _IncomingMessage,
    error_from_reply,
)

__all__ = ["Inbox"]

_MSG, _ERR = MessageType.MSG, MessageType.ERR


class _Inflight:
    """A multi-frame message being received: buffered, streamed, or discarded."""

    __slots__ = ("buffer", "done", "message")

    def __init__(
        self,
        message: _IncomingMessage | None,
        buffer: bytearray | None,
        done: Callable[[Any], None] | None = None,
    ) -> None:
        self.message = message
        self.buffer = buffer
        self.done = done


class Inbox:
    """Handlers by profile, requests awaiting replies, and messages still arriving."""

    def __init__(
        self,
        core: BlipCore,
        spawn: Callable[[Handler, IncomingRequest], None],
        wake: Callable[[], None],
    ) -> None:
        self._core = core
        self._spawn = spawn
        self._wake = wake
        self.handlers: dict[str, tuple[Handler, bool]] = {}
        self.default: tuple[Handler, bool] | None = None
        #: Our requests awaiting a reply: future and whether the reply is streamed.
        self.pending: dict[int, tuple[asyncio.Future[Response], bool]] = {}
        self._inflight: dict[tuple[bool, int], _Inflight] = {}

    def fail(self, error: BlipError) -> None:
        """The connection is gone: fail every waiting request and body stream."""
        for future, _ in self.pending.values():
            if not future.done():
                future.set_exception(error)
        for inflight in self._inflight.values():
            if inflight.message is not None and inflight.message._stream is not None:
                inflight.message._stream.fail(error)
        self._inflight.clear()

    def dispatch(self, events: list[Event]) -> None:
        """Route the core's events to handlers, waiting requests and body streams."""
        for event in events:
            if isinstance(event, MessageReceived):
                if event.type is _MSG:
                    self._request_begun(event.number, event.flags, event.properties, event.body)
                else:
                    self._reply_complete(
                        event.type, event.number, event.flags, event.properties, event.body
                    )
            elif isinstance(event, BodyReceived):
                inflight = self._inflight[event.type is _MSG, event.number]
                if inflight.buffer is not None:
                    inflight.buffer += event.data
                    self._core.release(event.type, event.number, event.credit)
                elif inflight.message is not None and inflight.message._stream is not None:
                    inflight.message._stream.feed(event.data, event.credit)
                else:
                    self._core.release(event.type, event.number, event.credit)
            elif isinstance(event, MessageBegun):
                if event.type is _MSG:
                    self._request_begun(event.number, event.flags, event.properties, None)
                else:
                    self._reply_begun(event.type, event.number, event.flags, event.properties)
            elif isinstance(event, FrameDropped):
                if event.type is not None and event.type is not _MSG:
                    pending = self.pending.get(event.number)
                    if pending is not None and not pending[0].done():
                        pending[0].set_exception(event.error)
            else:  # MessageEnded
                inflight = self._inflight.pop((event.type is _MSG, event.number))
                message = inflight.message
                if message is not None:
                    if inflight.buffer is not None:
                        message._body = bytes(inflight.buffer)
                    elif message._stream is not None:
                        message._stream.end()
                    if inflight.done is not None:
                        inflight.done(message)

    def _request_begun(
        self, number: int, flags: int, properties: dict[str, str], body: bytes | None
    ) -> None:
        entry = self.handlers.get(properties.get("Profile", ""), self.default)
        if entry is None:
            if not flags & NO_REPLY:
                profile = properties.get("Profile", "")
                self._core.send_error(
                    number, BLIP_DOMAIN, BlipErrorCode.NOT_FOUND, f"no handler for {profile!r}"
                )
            if body is None:
                self._inflight[True, number] = _Inflight(None, None)
            return
        handler, streaming = entry
        if body is not None:
            self._spawn(handler, IncomingRequest(number, flags, properties, body))
        elif streaming:
            stream = BodyStream(self._releaser(_MSG, number))
            request = IncomingRequest(number, flags, properties, None, stream)
            self._inflight[True, number] = _Inflight(request, None)
            self._spawn(handler, request)
        else:
            request = IncomingRequest(number, flags, properties)
            self._inflight[True, number] = _Inflight(
                request, bytearray(), lambda msg: self._spawn(handler, msg)
            )

    def _reply_begun(
        self, kind: MessageType, number: int, flags: int, properties: dict[str, str]
    ) -> None:
        pending = self.pending.get(number)
        if pending is None or pending[0].done():
            self._inflight[False, number] = _Inflight(None, None)
        elif kind is _ERR or not pending[1]:
            response = Response(number, flags, properties)
            self._inflight[False, number] = _Inflight(
                response,
                bytearray(),
                lambda msg: self._reply_complete(kind, number, flags, msg.properties, msg.body),
            )
        else:
            stream = BodyStream(self._releaser(kind, number))
            response = Response(number, flags, properties, None, stream)
            self._inflight[False, number] = _Inflight(response, None)
            pending[0].set_result(response)

    def _reply_complete(
        self, kind: MessageType, number: int, flags: int, properties: dict[str, str], body: bytes
    ) -> None:
        pending = self.pending.get(number)
        if pending is None or pending[0].done():
            return
        if kind is _ERR:
            pending[0].set_exception(error_from_reply(properties, body))
        else:
            pending[0].set_result(Response(number, flags, properties, body))

    def _releaser(self, kind: MessageType, number: int) -> Callable[[int], None]:
        core = self._core

        def release(credit: int) -> None:
            core.release(kind, number, credit)
            if core.wants_to_send:
                self._wake()

        return release
