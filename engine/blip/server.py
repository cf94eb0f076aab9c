"""Accepting BLIP connections with a `websockets` server (tests and simple listeners)."""

from __future__ import annotations

import inspect
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from websockets.asyncio.server import Server, ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from engine.blip.client import BLIP_SUBPROTOCOL
from engine.blip.connection import BlipConnection
from engine.blip.limits import BlipLimits

__all__ = ["ProcessRequest", "serve"]

#: Called with each new connection before it starts; registers handlers (may be async).
OnConnection = Callable[[BlipConnection], Awaitable[None] | None]
#: websockets' hook to inspect the upgrade request (auth, path); return a Response to reject.
ProcessRequest = Callable[[ServerConnection, Request], Awaitable[Response | None] | Response | None]


async def serve(
    on_connection: OnConnection,
    host: str | None,
    port: int,
    *,
    ssl: ssl_module.SSLContext | None = None,
    subprotocols: Sequence[str] = (BLIP_SUBPROTOCOL,),
    process_request: ProcessRequest | None = None,
    limits: BlipLimits | None = None,
    **kwargs: Any,
) -> Server:
    """Listen for BLIP clients; a client offering none of ``subprotocols`` gets HTTP 400."""
    limits = limits or BlipLimits()

    async def handler(ws: ServerConnection) -> None:
        conn = BlipConnection(ws, limits=limits)
        result = on_connection(conn)
        if inspect.isawaitable(result):
            await result
        await conn.run()

    return await ws_serve(
        handler,
        host,
        port,
        ssl=ssl,
        # websockets rejects a client without a shared subprotocol with 400 and the reason.
        subprotocols=[Subprotocol(p) for p in subprotocols],
        process_request=process_request,
        compression=None,
        max_size=limits.max_frame_size,
        **kwargs,
    )
