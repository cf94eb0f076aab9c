"""End-to-end: real replications against a listener, with and without TLS."""

from __future__ import annotations

import asyncio

from engine.listener import ConnectionClosed, ConnectionOpened, ListenerEvent
from engine.replication import ActivityLevel
from engine.store import Database
from tests.listener.conftest import REPLICATION_TIMEOUT, doc_ids, put_docs, replicate, url_for


async def test_no_tls_push_and_pull(make_listener, server_db: Database, client_db: Database):
    put_docs(server_db.default_collection(), "srv", 3)
    put_docs(client_db.default_collection(), "cli", 2)
    listener = await make_listener(disable_tls=True)
    events: list[ListenerEvent] = []
    listener.add_event_listener(events.append)
    closed_seen = asyncio.Event()
    listener.add_event_listener(
        lambda e: closed_seen.set() if isinstance(e, ConnectionClosed) else None
    )
    assert listener.port > 0
    assert listener.tls_identity is None
    assert all(u.startswith("ws://") and u.endswith("/served") for u in listener.urls)
    status = await replicate(client_db, url_for(listener))
    assert status.error is None, status.error
    assert status.activity is ActivityLevel.STOPPED
    expected = {"srv-0", "srv-1", "srv-2", "cli-0", "cli-1"}
    assert doc_ids(server_db.default_collection()) == expected
    assert doc_ids(client_db.default_collection()) == expected
    await asyncio.wait_for(closed_seen.wait(), REPLICATION_TIMEOUT)
    assert isinstance(events[0], ConnectionOpened)
    closed = events[-1]
    assert isinstance(closed, ConnectionClosed)
    assert set(closed.directions) == {"push", "pull"}
    assert (closed.docs_received, closed.docs_sent) == (2, 3)
    assert closed.by_peer is True and closed.code == 1000


async def test_accepted_connections_do_not_wait_for_nagle(make_listener) -> None:
    """Small replies leave at once: TCP_NODELAY on the listener's side of each connection.

    (asyncio sets it only on sockets created with proto IPPROTO_TCP; the listener's
    own listening sockets once had proto 0, and pushes to it ran ~30% slower.)
    """
    import socket

    from engine import blip

    listener = await make_listener(disable_tls=True)
    conn = await blip.connect(url_for(listener) + "/_blipsync", open_timeout=5)
    try:
        for _ in range(100):
            if listener._peers:
                break
            await asyncio.sleep(0.01)
        (peer,) = listener._peers.values()
        server_socket = peer.conn.websocket.transport.get_extra_info("socket")
        assert server_socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        await conn.close()
