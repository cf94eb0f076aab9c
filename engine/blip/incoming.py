"""Application-facing messages: incoming requests and responses, outgoing replies, body streams."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from engine.blip.errors import BLIP_DOMAIN, BlipError, BlipErrorCode, LocalProtocolError
from engine.blip.frame import COMPRESSED, NO_REPLY, URGENT

__all__ = [
    "Body",
    "BodyStream",
    "Handler",
    "IncomingRequest",
    "OutgoingReply",
    "Response",
    "error_from_reply",
]

#: Body of an outgoing message: bytes, or an async iterator of bytes to stream.
Body = bytes | bytearray | memoryview | AsyncIterable[bytes]


@dataclass(slots=True)
class OutgoingReply:
    """What a handler returns; ``None`` for urgent/compressed means "as the request"."""

    properties: Mapping[str, str] | None = None
    body: Body = b""
    urgent: bool | None = None
    compressed: bool | None = None


class BodyStream:
    """A body arriving frame by frame; each chunk's ACK credit is released once it is read."""

    __slots__ = ("_chunks", "_discarding", "_done", "_error", "_release", "_waiter")

    def __init__(self, release: Callable[[int], None]) -> None:
        self._release = release
        self._chunks: deque[tuple[bytes, int]] = deque()
        self._done = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._discarding = False

    @property
    def buffered(self) -> int:
        """Bytes received and not yet read."""
        return sum(len(chunk) for chunk, _ in self._chunks)

    def feed(self, data: bytes, credit: int) -> None:
        if self._discarding:
            self._release(credit)
            return
        self._chunks.append((data, credit))
        self._wake()

    def end(self) -> None:
        self._done = True
        self._wake()

    def fail(self, error: BaseException) -> None:
        if not self._done:
            self._error = error
            self._done = True
            self._wake()

    def discard(self) -> None:
        """Nobody will read the rest: release everything now and from now on."""
        self._discarding = True
        while self._chunks:
            self._release(self._chunks.popleft()[1])

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def read(self) -> bytes:
        """The next chunk, or b"" at the end of the body."""
        while not self._chunks:
            if self._done:
                if self._error is not None:
                    raise self._error
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data, credit = self._chunks.popleft()
        self._release(credit)
        return data

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        data = await self.read()
        if not data:
            raise StopAsyncIteration
        return data


class _IncomingMessage:
    __slots__ = ("_body", "_stream", "flags", "number", "properties")

    def __init__(
        self,
        number: int,
        flags: int,
        properties: dict[str, str],
        body: bytes | None = None,
        stream: BodyStream | None = None,
    ) -> None:
        self.number = number
        self.flags = flags
        self.properties = properties
        self._body = body
        self._stream = stream

    @property
    def body(self) -> bytes:
        """The complete body (for a streamed body: after :meth:`read_body`)."""
        if self._body is None:
            raise LocalProtocolError("this body is streamed: use stream() or await read_body()")
        return self._body

    def json(self) -> Any:
        """The body parsed as JSON."""
        return orjson.loads(self.body)

    async def read_body(self) -> bytes:
        """Read the whole body (it is buffered in memory)."""
        if self._body is None:
            assert self._stream is not None
            self._body = b"".join([chunk async for chunk in self._stream])
        return self._body

    async def stream(self) -> AsyncIterator[bytes]:
        """The body chunk by chunk, as it arrives."""
        if self._body is not None:
            if self._body:
                yield self._body
            return
        assert self._stream is not None
        async for chunk in self._stream:
            yield chunk

    @property
    def streamed(self) -> bool:
        return self._body is None

    @property
    def urgent(self) -> bool:
        return bool(self.flags & URGENT)

    @property
    def compressed(self) -> bool:
        return bool(self.flags & COMPRESSED)


class IncomingRequest(_IncomingMessage):
    """A request from the peer, handed to the handler registered for its profile."""

    __slots__ = ()

    @property
    def profile(self) -> str:
        return self.properties.get("Profile", "")

    @property
    def no_reply(self) -> bool:
        return bool(self.flags & NO_REPLY)

    def __repr__(self) -> str:
        return f"<IncomingRequest #{self.number} {self.profile!r}>"


class Response(_IncomingMessage):
    """A successful reply (RPY) to one of our requests."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<Response #{self.number} {self.properties!r}>"


def error_from_reply(properties: Mapping[str, str], body: bytes) -> BlipError:
    """The BlipError an ERR reply describes (spec §1.2: the domain defaults to BLIP)."""
    extra = {k: v for k, v in properties.items() if k not in ("Error-Domain", "Error-Code")}
    try:
        code = int(properties.get("Error-Code", BlipErrorCode.UNSPECIFIED))
    except ValueError:
        code = BlipErrorCode.UNSPECIFIED
    domain = properties.get("Error-Domain", BLIP_DOMAIN)
    return BlipError(domain, code, body.decode("utf-8", "replace"), properties=extra)


#: async def handler(request) -> OutgoingReply | None
Handler = Callable[[IncomingRequest], Awaitable[OutgoingReply | None]]
