"""Hostile input: slow handshakes, oversized headers, a crowd of bogus connections."""

from __future__ import annotations

import asyncio
import ssl

from engine.store import Database
from tests.listener.conftest import (
    REPLICATION_TIMEOUT,
    MemoryKeyring,
    doc_ids,
    put_docs,
    raw_request,
    replicate,
    url_for,
)


async def _closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    return await asyncio.wait_for(reader.read(), REPLICATION_TIMEOUT)


async def test_slow_http_handshake_times_out(make_listener) -> None:
    listener = await make_listener(disable_tls=True, open_timeout=0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    writer.write(b"GET /served/_blipsync HTTP/1.1\r\nHost: x\r\n")  # never finished
    await writer.drain()
    assert await _closed_by_server(reader) == b""
    writer.close()


async def test_slow_tls_handshake_times_out(memory_keyring: MemoryKeyring, make_listener) -> None:
    listener = await make_listener(open_timeout=0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    writer.write(b"\x16\x03\x01")  # the first bytes of a ClientHello, then silence
    await writer.drain()
    data = await _closed_by_server(reader)
    assert b"HTTP" not in data
    writer.close()


async def test_oversized_headers_are_refused(make_listener) -> None:
    listener = await make_listener(disable_tls=True)
    long_line = await raw_request(listener.port, "/served", {"X-Big": "a" * 20_000})
    assert long_line.status == 431
    many = await raw_request(listener.port, "/served", {f"X-H{i}": "v" for i in range(300)})
    assert many.status == 431


async def test_bogus_crowd_does_not_stop_a_real_replication(
    memory_keyring: MemoryKeyring, make_listener, server_db: Database, client_db: Database
) -> None:
    listener = await make_listener(open_timeout=5)
    port = listener.port
    garbage = ssl.create_default_context()
    garbage.check_hostname = False
    garbage.verify_mode = ssl.CERT_NONE

    async def bogus(i: int) -> asyncio.StreamWriter:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        # Silent sockets, half ClientHellos and plain-text junk.
        writer.write([b"", b"\x16\x03\x01\x02\x00", b"GET / HTTP/1.1\r\n"][i % 3])
        await writer.drain()
        return writer

    crowd = await asyncio.gather(*(bogus(i) for i in range(200)))
    put_docs(client_db.default_collection(), "cli", 3)
    put_docs(server_db.default_collection(), "srv", 3)
    try:
        status = await replicate(
            client_db, url_for(listener), accept_only_self_signed_server_certificate=True
        )
        assert status.error is None, status.error
        assert len(doc_ids(server_db.default_collection())) == 6
        assert len(doc_ids(client_db.default_collection())) == 6
    finally:
        for writer in crowd:
            writer.close()
