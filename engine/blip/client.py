"""Opening a BLIP connection as a WebSocket client."""

from __future__ import annotations

import ssl as ssl_module
from collections.abc import Mapping, Sequence

from websockets.asyncio.client import connect as ws_connect
from websockets.typing import Subprotocol

from engine.blip.connection import BlipConnection
from engine.blip.errors import BlipError
from engine.blip.limits import BlipLimits

__all__ = ["BLIP_SUBPROTOCOL", "connect"]

#: The WebSocket subprotocol of BLIP 3 carrying the Couchbase Mobile 3 replication protocol.
BLIP_SUBPROTOCOL = "BLIP_3+CBMobile_3"


async def connect(
    url: str,
    *,
    ssl: ssl_module.SSLContext | None = None,
    headers: Mapping[str, str] | None = None,
    subprotocols: Sequence[str] = (BLIP_SUBPROTOCOL,),
    open_timeout: float | None = 10,
    ping_interval: float | None = 20,
    ping_timeout: float | None = 20,
    close_timeout: float | None = 10,
    limits: BlipLimits | None = None,
    name: str = "",
) -> BlipConnection:
    """Open a WebSocket to ``url`` (ws:// or wss://) and start BLIP over it."""
    limits = limits or BlipLimits()
    ws = await ws_connect(
        url,
        ssl=ssl,
        additional_headers=dict(headers or {}),
        subprotocols=[Subprotocol(p) for p in subprotocols],
        open_timeout=open_timeout,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        close_timeout=close_timeout,
        compression=None,  # BLIP compresses frames itself
        max_size=limits.max_frame_size,
    )
    if ws.subprotocol not in subprotocols:
        await ws.close(1002, "no BLIP subprotocol")
        raise BlipError(
            "WebSocket",
            1002,
            f"server chose subprotocol {ws.subprotocol!r}, not one of {list(subprotocols)}",
            hint="the server does not speak BLIP 3",
        )
    conn = BlipConnection(ws, limits=limits, name=name or url)
    conn.start()
    return conn
