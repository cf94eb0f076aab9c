"""The asyncio adapter: moves frames between a `websockets` connection and a BlipCore."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, Coroutine, Mapping
from typing import Any

from websockets.asyncio.connection import Connection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from engine.blip.core import BlipCore, CoreState
from engine.blip.errors import (
    BLIP_DOMAIN,
    BlipError,
    BlipErrorCode,
    ConnectionClosedError,
    FatalProtocolError,
    LocalProtocolError,
)
from engine.blip.inbox import Inbox
from engine.blip.incoming import Body, Handler, IncomingRequest, OutgoingReply, Response
from engine.blip.limits import BlipLimits
from engine.blip.message import OutgoingMessage
from engine.blip.outbox import FRAME_SIZE
from engine.blip.properties import encode_properties

__all__ = ["BlipConnection"]

logger = logging.getLogger(__name__)

_BYTES_TYPES = (bytes, bytearray, memoryview)
_EMPTY_REPLY = OutgoingReply()
#: A streaming sender waits while this much of its body is written but not yet framed.
_SEND_BUFFER = 2 * FRAME_SIZE


class BlipConnection:
    """A BLIP connection over an open `websockets` asyncio connection (client or server)."""

    def __init__(self, ws: Connection, *, limits: BlipLimits | None = None, name: str = "") -> None:
        self._ws = ws
        self.name = name or f"{ws.remote_address}"
        self._core = BlipCore(limits, name=self.name)
        self._profile_blocks: dict[str, bytes] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._wake = asyncio.Event()
        self._inbox = Inbox(self._core, self._spawn, self._wake.set)
        self._progress = asyncio.Event()
        self._closed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._closing_locally = False
        #: False once closing started: no new requests.
        self._usable = True
        self.close_code: int | None = None
        self.close_reason = ""
        #: True if the peer closed (or dropped) the connection, False if we did.
        self.closed_by_peer: bool | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def websocket(self) -> Connection:
        return self._ws

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def start(self) -> None:
        """Start reading and writing frames (register handlers first)."""
        if self._reader is None:
            self._writer = asyncio.create_task(self._write_loop(), name=f"blip-write {self.name}")
            self._reader = asyncio.create_task(self._read_loop(), name=f"blip-read {self.name}")

    async def run(self) -> None:
        """Start if needed and wait until the connection is closed."""
        self.start()
        await self._closed.wait()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the WebSocket; pending requests fail with ConnectionClosedError."""
        if not self._closed.is_set():
            if self._ws.state is State.OPEN:
                self._closing_locally = True  # else the peer started closing first
            self._usable = False
            await self._ws.close(code, reason)
            if self._reader is None:
                await self._finish()
        await self._closed.wait()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def __aenter__(self) -> BlipConnection:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- handlers ------------------------------------------------------------------------------

    def register_handler(self, profile: str, handler: Handler, *, streaming: bool = False) -> None:
        """Handle requests with this Profile; ``streaming`` handlers read the body as it comes."""
        self._inbox.handlers[profile] = (handler, streaming)

    def set_default_handler(self, handler: Handler | None, *, streaming: bool = False) -> None:
        """Handle requests whose profile has no handler (else: a BLIP 404 error reply)."""
        self._inbox.default = None if handler is None else (handler, streaming)

    # -- requests ------------------------------------------------------------------------------

    async def send_request(
        self,
        profile: str,
        properties: Mapping[str, str] | None = None,
        body: Body = b"",
        *,
        urgent: bool = False,
        compressed: bool = False,
        no_reply: bool = False,
        stream_response: bool = False,
    ) -> Response | None:
        """Send a request and wait for its reply; an ERR reply raises BlipError."""
        if not self._usable:
            self._check_open()
        props = self._request_properties(profile, properties)
        streaming = not isinstance(body, _BYTES_TYPES)
        msg = self._core.send_request(
            props,
            b"" if streaming else body,  # type: ignore[arg-type]
            urgent=urgent,
            compressed=compressed,
            no_reply=no_reply,
            streaming=streaming,
        )
        future: asyncio.Future[Response] | None = None
        if not no_reply:
            future = asyncio.get_running_loop().create_future()
            self._inbox.pending[msg.number] = (future, stream_response)
        self._wake.set()
        try:
            if streaming:
                await self._pump(msg, body)  # type: ignore[arg-type]
            return None if future is None else await future
        finally:
            self._inbox.pending.pop(msg.number, None)

    def request(
        self,
        profile: str,
        properties: Mapping[str, str] | None = None,
        body: bytes | bytearray | memoryview = b"",
        *,
        urgent: bool = False,
        compressed: bool = False,
    ) -> asyncio.Future[Response]:
        """Queue a request now and return the future of its reply (no task per request).

        For pipelining many requests; an ERR reply sets BlipError on the future.
        """
        if not self._usable:
            self._check_open()
        props = self._request_properties(profile, properties)
        msg = self._core.send_request(props, body, urgent=urgent, compressed=compressed,
                                      no_reply=False, streaming=False)
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        pending = self._inbox.pending
        number = msg.number
        pending[number] = (future, False)
        future.add_done_callback(lambda _f: pending.pop(number, None))
        self._wake.set()
        return future

    async def _pump(self, msg: OutgoingMessage, body: AsyncIterable[bytes]) -> None:
        """Feed a streamed body into the core, never more than a couple of frames ahead."""
        try:
            async for chunk in body:
                self._check_open()
                self._core.write_body(msg, chunk)
                self._wake.set()
                while msg.pending > _SEND_BUFFER:
                    await self._progress.wait()
                    self._check_open()
        finally:
            # An iterator failing half-way ends the message short; the exception propagates.
            self._core.end_body(msg)
            self._wake.set()

    def _request_properties(
        self, profile: str, properties: Mapping[str, str] | None
    ) -> Mapping[str, str] | bytes:
        """A request's properties: a dict, or the cached block of a bare Profile."""
        if properties:
            return {"Profile": profile, **properties}
        return self._profile_blocks.get(profile) or self._profile_block(profile)

    def _profile_block(self, profile: str) -> bytes:
        """The encoded properties of a request with just a Profile (cached: they repeat)."""
        block = encode_properties({"Profile": profile})
        if len(self._profile_blocks) < 256:
            self._profile_blocks[profile] = block
        return block

    def _check_open(self) -> None:
        if not self._usable:
            raise ConnectionClosedError(
                self.close_code or self._ws.close_code,
                self.close_reason,
                by_peer=bool(self.closed_by_peer),
            )

    # -- reading -------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        core, recv, send, dispatch = self._core, self._ws.recv, self._ws.send, self._inbox.dispatch
        try:
            while True:
                data = await recv()
                if isinstance(data, str):
                    core.receive_text()
                core.receive_frame(data)
                dispatch(core.events_received())
                if core.wants_to_send:
                    # ACKs go out at once: the sender is stalled until it gets them (spec §3.7).
                    for ack in core.acks_to_send():
                        await send(ack)
                    self._wake.set()
        except FatalProtocolError as exc:
            logger.warning("blip %s: fatal protocol error: %s", self.name, exc)
            self._closing_locally = True
            self._usable = False
            await self._ws.close(exc.close_code, str(exc)[:120])
        except ConnectionClosed:
            pass
        except Exception:
            logger.exception("blip %s: internal error; closing the connection", self.name)
            self._closing_locally = True
            self._usable = False
            await self._ws.close(1011, "internal error")
        finally:
            await self._finish()

    # -- handlers ------------------------------------------------------------------------------

    def _spawn(self, handler: Handler, request: IncomingRequest) -> None:
        self._tasks.add(asyncio.create_task(self._handle(handler, request)))

    async def _handle(self, handler: Handler, request: IncomingRequest) -> None:
        try:
            reply = await handler(request)
        except BlipError as exc:
            self._reply_error(request, exc.domain, exc.code, exc.message, exc.properties)
        except Exception as exc:
            logger.exception("blip %s: handler for %r failed", self.name, request.profile)
            message = f"handler failed: {type(exc).__name__}"
            self._reply_error(request, BLIP_DOMAIN, BlipErrorCode.HANDLER_FAILED, message, None)
        else:
            if not request.no_reply and self._usable:
                streamed = self._send_reply(request, reply or _EMPTY_REPLY)
                if streamed is not None:
                    await streamed
        finally:
            if request._stream is not None:
                request._stream.discard()
            # Cheaper than a done callback, which costs an extra loop callback per request.
            self._tasks.discard(asyncio.current_task())

    def _reply_error(
        self,
        request: IncomingRequest,
        domain: str,
        code: int,
        message: str,
        properties: Mapping[str, str] | None,
    ) -> None:
        if request.no_reply or not self._usable:
            return
        self._core.send_error(request.number, domain, code, message, properties)
        self._wake.set()

    def _send_reply(
        self, request: IncomingRequest, reply: OutgoingReply
    ) -> Coroutine[Any, Any, None] | None:
        """Queue the reply; for a streamed body, return the coroutine that feeds it."""
        body = reply.body
        streaming = not isinstance(body, _BYTES_TYPES)
        compressed = request.compressed if reply.compressed is None else reply.compressed
        if not streaming and not body:
            compressed = False  # nothing to deflate: skip the sync-flush cost
        try:
            msg = self._core.send_reply(
                request.number,
                reply.properties,
                b"" if streaming else body,  # type: ignore[arg-type]
                urgent=request.urgent if reply.urgent is None else reply.urgent,
                compressed=compressed,
                streaming=streaming,
            )
        except LocalProtocolError:
            if self._core.state is CoreState.OPEN:
                raise
            return None
        self._wake.set()
        return self._pump(msg, body) if streaming else None  # type: ignore[arg-type]

    # -- writing -------------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        core, ws, wake, progress = self._core, self._ws, self._wake, self._progress
        batch = getattr(ws, "send_context", None)
        send_binary = ws.protocol.send_binary
        try:
            while True:
                frames = core.frames_to_send()
                if not frames:
                    wake.clear()
                    await wake.wait()
                    continue
                if len(frames) == 1 or batch is None:
                    for frame in frames:
                        await ws.send(frame)
                else:
                    # One write context for the batch instead of one per frame; safe because
                    # this task is the only sender and never fragments a message.
                    async with batch():
                        for frame in frames:
                            send_binary(frame)
                progress.set()
                progress.clear()
        except ConnectionClosed:
            pass

    # -- closing -------------------------------------------------------------------------------

    async def _finish(self) -> None:
        """Fail what is pending, stop every task, mark closed."""
        if self._closed.is_set():
            return
        self._usable = False
        self._core.close()
        ws = self._ws
        self.close_code = ws.close_code if ws.close_code is not None else 1006
        self.close_reason = ws.close_reason or ""
        self.closed_by_peer = not self._closing_locally
        error = ConnectionClosedError(
            self.close_code, self.close_reason, by_peer=self.closed_by_peer
        )
        self._inbox.fail(error)
        self._progress.set()
        current = asyncio.current_task()
        tasks = [t for t in (self._writer, *self._tasks) if t is not None and t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        logger.debug(
            "blip %s: closed (%s %r, by %s)",
            self.name,
            self.close_code,
            self.close_reason,
            "peer" if self.closed_by_peer else "us",
        )
        self._closed.set()
