"""Fixtures for the listener tests: databases, an in-memory keyring, replication helpers."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine.listener import URLEndpointListener, URLEndpointListenerConfiguration
from engine.replication import (
    Replicator,
    ReplicatorConfiguration,
    ReplicatorStatus,
    ReplicatorType,
    URLEndpoint,
)
from engine.store import Collection, Database, MutableDocument
from tests.tls.conftest import (  # noqa: F401  (fixtures re-exported for this package)
    MemoryKeyring,
    keyring_backend,
    keyring_store,
    memory_keyring,
    secret_service,
    using_keyring,
)

#: Generous bound for one replication in a test (never a timing assertion).
REPLICATION_TIMEOUT = 20.0


@pytest.fixture
def server_db(tmp_path: Path) -> Iterator[Database]:
    db = Database("served", tmp_path / "server")
    yield db
    db.close()


@pytest.fixture
def client_db(tmp_path: Path) -> Iterator[Database]:
    db = Database("client", tmp_path / "client")
    yield db
    db.close()


def put_docs(coll: Collection, prefix: str, count: int) -> None:
    for i in range(count):
        coll.save(MutableDocument(f"{prefix}-{i}", {"n": i, "from": prefix}))


def doc_ids(coll: Collection) -> set[str]:
    return set(coll.document_ids())


def url_for(listener: URLEndpointListener, host: str = "127.0.0.1") -> str:
    """The listener's URL on ``host`` (it must be among its URLs)."""
    found = [u for u in listener.urls if f"//{host}:" in u]
    assert found, f"no URL on {host} in {listener.urls}"
    return found[0]


async def replicate(
    db: Database,
    url: str,
    *,
    kind: ReplicatorType = ReplicatorType.PUSH_AND_PULL,
    continuous: bool = False,
    **options: Any,
) -> ReplicatorStatus:
    """Run a one-shot (or until-stopped continuous) replication and return its final status."""
    replicator = Replicator(
        ReplicatorConfiguration(
            target=URLEndpoint(url),
            collections=[db.default_collection()],
            replicator_type=kind,
            continuous=continuous,
            **options,
        )
    )
    replicator.start()
    return await replicator.wait_stopped(REPLICATION_TIMEOUT)


@pytest.fixture
async def make_listener(
    server_db: Database,
) -> AsyncIterator[Any]:
    """``await make_listener(**config)``: a started listener, stopped after the test."""
    started: list[URLEndpointListener] = []

    async def make(**options: Any) -> URLEndpointListener:
        collections = options.pop("collections", [server_db.default_collection()])
        listener = URLEndpointListener(
            URLEndpointListenerConfiguration(collections=collections, **options)
        )
        await listener.start()
        started.append(listener)
        return listener

    yield make
    for listener in started:
        await listener.stop()


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


async def raw_request(
    port: int,
    path: str,
    headers: dict[str, str] | None = None,
    *,
    tls: bool = False,
    subprotocol: str | None = "BLIP_3+CBMobile_3",
) -> RawResponse:
    """Send a WebSocket upgrade request by hand and read the HTTP answer."""
    context = None
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}",
        "Sec-WebSocket-Version: 13",
    ]
    if subprotocol is not None:
        lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    parsed = dict(
        (line.split(":", 1)[0].strip(), line.split(":", 1)[1].strip())
        for line in header_lines
        if ":" in line
    )
    length = int(parsed.get("Content-Length", "0"))
    body = await reader.readexactly(length) if length else b""
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return RawResponse(int(status_line.split()[1]), parsed, body)
