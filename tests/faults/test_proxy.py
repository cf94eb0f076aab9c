"""The fault proxy itself: forwarding, cut, stall, throttle, corruption (plain and TLS), drop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from tests.tls.pki import NOW, make_self_signed

from .proxy import Direction, FaultProxy

PAYLOAD = os.urandom(200_000)


class Upstream:
    """An echo (or sink) server recording what it received on each connection."""

    def __init__(self, *, echo: bool, ssl_context: ssl.SSLContext | None = None) -> None:
        self.echo = echo
        self.ssl_context = ssl_context
        self.received: list[bytearray] = []
        self.errors: list[BaseException] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got = bytearray()
        self.received.append(got)
        try:
            while data := await reader.read(65536):
                got += data
                if self.echo:
                    writer.write(data)
                    await writer.drain()
        except (ConnectionError, ssl.SSLError, OSError) as exc:
            self.errors.append(exc)
        finally:
            writer.transport.abort()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


@pytest.fixture
async def echo() -> AsyncIterator[tuple[Upstream, FaultProxy]]:
    upstream = Upstream(echo=True)
    proxy = FaultProxy(await upstream.start())
    await proxy.start()
    yield upstream, proxy
    await proxy.stop()
    await upstream.stop()


@pytest.fixture
async def sink() -> AsyncIterator[tuple[Upstream, FaultProxy]]:
    upstream = Upstream(echo=False)
    proxy = FaultProxy(await upstream.start())
    await proxy.start()
    yield upstream, proxy
    await proxy.stop()
    await upstream.stop()


async def _exchange(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    got = await asyncio.wait_for(reader.readexactly(len(data)), 10)
    writer.close()
    return got


async def test_forwards_both_ways_and_counts(echo: tuple[Upstream, FaultProxy]) -> None:
    _, proxy = echo
    assert await _exchange(proxy.port, PAYLOAD) == PAYLOAD
    assert proxy.stats.bytes_up == proxy.stats.bytes_down == len(PAYLOAD)
    assert proxy.stats.connections == 1


async def test_cut_after_n_bytes_resets_both_sides(sink: tuple[Upstream, FaultProxy]) -> None:
    upstream, proxy = sink
    done = proxy.cut_after(12_345)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(PAYLOAD)
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    await asyncio.wait_for(done.wait(), 5)
    # the client sees the connection end (reset or EOF), never more data
    with contextlib.suppress(ConnectionError):
        assert await asyncio.wait_for(reader.read(), 5) == b""
    for _ in range(100):
        if upstream.received and proxy.open_connections == 0:
            break
        await asyncio.sleep(0.02)
    assert bytes(upstream.received[0]) == PAYLOAD[:12_344]  # exactly n-1 bytes got through
    assert proxy.stats.cuts == 1 and not proxy.cut_pending
    writer.close()
    # one-shot: the next connection is untouched
    _, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(PAYLOAD)
    await writer.drain()
    for _ in range(250):
        if len(upstream.received) == 2 and len(upstream.received[1]) == len(PAYLOAD):
            break
        await asyncio.sleep(0.02)
    assert bytes(upstream.received[1]) == PAYLOAD
    writer.close()


async def test_cut_is_one_shot(echo: tuple[Upstream, FaultProxy]) -> None:
    _, proxy = echo
    proxy.cut_after(1_000)
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        await _exchange(proxy.port, PAYLOAD)
    assert await _exchange(proxy.port, PAYLOAD) == PAYLOAD
    assert proxy.stats.cuts == 1


async def test_stall_delays_but_delivers(echo: tuple[Upstream, FaultProxy]) -> None:
    _, proxy = echo
    proxy.stall(0.6)
    started = time.monotonic()
    assert await _exchange(proxy.port, b"hello" * 1000) == b"hello" * 1000
    assert time.monotonic() - started >= 0.55


async def test_throttle_limits_the_rate(sink: tuple[Upstream, FaultProxy]) -> None:
    upstream, proxy = sink
    proxy.throttle(50_000)
    _, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    started = time.monotonic()
    writer.write(b"z" * 40_000)
    await writer.drain()
    while not upstream.received or len(upstream.received[0]) < 40_000:
        await asyncio.sleep(0.01)
        assert time.monotonic() - started < 10
    # 40 kB at 50 kB/s cannot arrive in less than ~0.8 s (a bound on the proxy, not speed)
    assert time.monotonic() - started >= 0.7
    writer.close()
    proxy.throttle(None)
    assert await _exchange(proxy.port, b"") == b""


async def test_corrupts_exactly_one_byte_of_plain_traffic(
    echo: tuple[Upstream, FaultProxy],
) -> None:
    upstream, proxy = echo
    proxy.corrupt_next(Direction.DOWN)
    data = bytes(1000)
    got = await _exchange(proxy.port, data)
    diff = [i for i in range(len(data)) if got[i] != data[i]]
    assert len(diff) == 1 and bytes(upstream.received[0]) == data
    assert proxy.stats.corrupted == 1
    assert await _exchange(proxy.port, data) == data  # one-shot


def _tls_contexts(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    later = NOW.replace(year=NOW.year + 1)
    issued = make_self_signed("proxy-test", not_before=NOW, not_after=later)
    cert = tmp_path / "cert.pem"
    key = tmp_path / "key.pem"
    cert.write_bytes(issued.cert.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        issued.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    return server, client


@pytest.mark.parametrize("direction", [Direction.UP, Direction.DOWN])
async def test_corrupted_tls_fails_instead_of_delivering_garbage(
    tmp_path: Path, direction: Direction
) -> None:
    server_ctx, client_ctx = _tls_contexts(tmp_path)
    upstream = Upstream(echo=True, ssl_context=server_ctx)
    proxy = FaultProxy(await upstream.start())
    await proxy.start()
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", proxy.port, ssl=client_ctx, server_hostname="localhost"
        )
        assert await _echo_once(reader, writer, b"before") == b"before"
        proxy.corrupt_next(direction)
        data = b"A" * 5000
        received = b""
        with contextlib.suppress(ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            writer.write(data)
            await writer.drain()
            while len(received) < len(data):
                chunk = await asyncio.wait_for(reader.read(65536), 5)
                if not chunk:
                    break
                received += chunk
        writer.transport.abort()
        assert proxy.stats.corrupted == 1
        assert len(received) < len(data), "a corrupted TLS stream was delivered in full"
        assert data.startswith(received), "TLS delivered garbage"
        # nor did the server application ever read a corrupted byte
        assert all((b"before" + data).startswith(bytes(r)) for r in upstream.received)
    finally:
        await proxy.stop()
        await upstream.stop()


async def _echo_once(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes
) -> bytes:
    writer.write(data)
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(len(data)), 5)


async def test_drop_keeps_sockets_open_and_forwards_nothing(
    echo: tuple[Upstream, FaultProxy],
) -> None:
    upstream, proxy = echo
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    assert await _echo_once(reader, writer, b"ping") == b"ping"
    assert proxy.drop() == 1
    writer.write(b"lost")
    await writer.drain()
    with pytest.raises(TimeoutError):  # neither EOF nor data: the socket just stays silent
        await asyncio.wait_for(reader.read(1), 0.5)
    assert bytes(upstream.received[0]) == b"ping"
    assert proxy.open_connections == 1
    # a new connection goes through: the peer is reachable again
    assert await _exchange(proxy.port, b"again") == b"again"
    writer.close()


async def test_upstream_down_resets_the_client() -> None:
    upstream = Upstream(echo=True)
    port = await upstream.start()
    await upstream.stop()
    assert upstream.server is not None
    await upstream.server.wait_closed()
    proxy = FaultProxy(port)
    await proxy.start()
    try:
        reader, _writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        with contextlib.suppress(ConnectionError):
            assert await asyncio.wait_for(reader.read(), 5) == b""
        assert proxy.stats.connections == 0
    finally:
        await proxy.stop()
