"""Ports, interfaces, paths, subprotocols, read-only, stop(), many listeners, events."""

from __future__ import annotations

import asyncio
import socket

import pytest

from engine import blip
from engine.listener import (
    ConnectionClosed,
    ConnectionOpened,
    InterfaceNotFoundError,
    ListenerConfigError,
    ListenerEvent,
    ListenerStateError,
    PortInUseError,
    ReplicationDirection,
    URLEndpointListener,
    URLEndpointListenerConfiguration,
    interface_addresses,
)
from engine.replication import (
    ActivityLevel,
    ClosedByPeerError,
    ForbiddenError,
    RemoteNotFoundError,
    Replicator,
    ReplicatorConfiguration,
    ReplicatorType,
    URLEndpoint,
)
from engine.store import Database
from tests.listener.conftest import (
    REPLICATION_TIMEOUT,
    doc_ids,
    put_docs,
    raw_request,
    replicate,
    url_for,
)


async def test_port_zero_gets_a_real_port_and_urls(make_listener) -> None:
    listener = await make_listener(disable_tls=True)
    assert 0 < listener.port < 65536
    assert f"ws://127.0.0.1:{listener.port}/served" in listener.urls
    usable = {a.address for a in interface_addresses() if a.usable}
    hosts = {u.split("//")[1].rsplit(":", 1)[0].strip("[]") for u in listener.urls}
    assert hosts <= usable
    assert listener.status.connection_count == 0


async def test_port_in_use_is_a_clear_error(make_listener) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(PortInUseError, match=f"port {port} is already in use") as caught:
            await make_listener(disable_tls=True, port=port)
        assert caught.value.port == port and caught.value.hint
        with pytest.raises(PortInUseError):
            await make_listener(disable_tls=True, port=port, network_interface="127.0.0.1")


async def test_fixed_port_and_second_listener_on_it(make_listener) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    first = await make_listener(disable_tls=True, port=port)
    assert first.port == port
    with pytest.raises(PortInUseError):
        await make_listener(disable_tls=True, port=port)


async def test_interface_by_name_and_by_address(make_listener, client_db: Database) -> None:
    by_name = await make_listener(disable_tls=True, network_interface="lo")
    assert f"ws://127.0.0.1:{by_name.port}/served" in by_name.urls
    assert all("127.0.0.1" in u or "[::1]" in u for u in by_name.urls)
    by_ip = await make_listener(disable_tls=True, network_interface="127.0.0.1")
    assert by_ip.urls == [f"ws://127.0.0.1:{by_ip.port}/served"]
    status = await replicate(client_db, url_for(by_ip), kind=ReplicatorType.PULL)
    assert status.error is None


@pytest.mark.parametrize("spec", ["no-such-if0", "203.0.113.77"])
async def test_unknown_interface_is_a_clear_error(make_listener, spec: str) -> None:
    with pytest.raises(InterfaceNotFoundError, match=spec) as caught:
        await make_listener(disable_tls=True, network_interface=spec)
    assert "lo" in str(caught.value)  # lists the interfaces there are


async def test_unknown_database_is_404(make_listener, client_db: Database) -> None:
    listener = await make_listener(disable_tls=True)
    for path in ("/other/_blipsync", "/", "/served/_blipsync/x", "/servedx"):
        answer = await raw_request(listener.port, path)
        assert answer.status == 404, path
        assert b'"status":404' in answer.body
    status = await replicate(client_db, f"ws://127.0.0.1:{listener.port}/other")
    assert isinstance(status.error, RemoteNotFoundError), status.error


async def test_both_paths_are_served(make_listener) -> None:
    listener = await make_listener(disable_tls=True)
    for path in ("/served", "/served/", "/served/_blipsync"):
        assert (await raw_request(listener.port, path)).status == 101, path


@pytest.mark.parametrize("offered", [None, "BLIP_3+CBMobile_2"])
async def test_wrong_subprotocol_is_400_with_a_reason(make_listener, offered) -> None:
    listener = await make_listener(disable_tls=True)
    answer = await raw_request(listener.port, "/served/_blipsync", subprotocol=offered)
    assert answer.status == 400
    assert b"BLIP_3+CBMobile_3" in answer.body


async def test_read_only_allows_pull_and_refuses_push(
    make_listener, server_db: Database, client_db: Database
) -> None:
    put_docs(server_db.default_collection(), "srv", 2)
    listener = await make_listener(disable_tls=True, read_only=True)

    pulled = await replicate(client_db, url_for(listener), kind=ReplicatorType.PULL)
    assert pulled.error is None, pulled.error
    assert doc_ids(client_db.default_collection()) == {"srv-0", "srv-1"}

    put_docs(client_db.default_collection(), "cli", 1)
    pushed = await replicate(client_db, url_for(listener), kind=ReplicatorType.PUSH)
    assert isinstance(pushed.error, ForbiddenError), pushed.error
    assert pushed.error.code == 403
    assert doc_ids(server_db.default_collection()) == {"srv-0", "srv-1"}


async def test_stop_closes_connections_with_1001_and_replicators_do_not_retry(
    make_listener, server_db: Database, tmp_path
) -> None:
    listener = await make_listener(disable_tls=True)
    events: list[ListenerEvent] = []
    listener.add_event_listener(events.append)
    clients = [Database(f"c{i}", tmp_path / f"c{i}") for i in range(2)]
    replicators = [
        Replicator(
            ReplicatorConfiguration(
                target=URLEndpoint(url_for(listener)),
                collections=[db.default_collection()],
                continuous=True,
            )
        )
        for db in clients
    ]
    idle = [asyncio.Event() for _ in replicators]
    for replicator, event in zip(replicators, idle, strict=True):
        replicator.add_change_listener(
            lambda status, event=event: (
                event.set() if status.activity is ActivityLevel.IDLE else None
            )
        )
        replicator.start()
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in idle)), REPLICATION_TIMEOUT)
    assert listener.status.connection_count == 2

    await listener.stop()

    assert listener.port == 0 and listener.status.connection_count == 0
    for replicator in replicators:
        status = await replicator.wait_stopped(REPLICATION_TIMEOUT)
        assert status.activity is ActivityLevel.STOPPED
        assert isinstance(status.error, ClosedByPeerError), status.error
    closed = [e for e in events if isinstance(e, ConnectionClosed)]
    assert sorted((e.code, e.by_peer) for e in closed) == [(1001, False), (1001, False)]
    for db in clients:
        db.close()


async def test_many_listeners_on_one_database_while_it_replicates_actively(
    make_listener, server_db: Database, tmp_path
) -> None:
    """Two listeners share a database, which also pushes to a third listener's database."""
    other = Database("other", tmp_path / "other")
    other_listener = URLEndpointListener(
        URLEndpointListenerConfiguration([other.default_collection()], disable_tls=True)
    )
    await other_listener.start()
    first = await make_listener(disable_tls=True)
    second = await make_listener(disable_tls=True, read_only=True)
    clients = [Database(f"c{i}", tmp_path / f"c{i}") for i in range(2)]
    put_docs(clients[0].default_collection(), "c0", 3)
    put_docs(server_db.default_collection(), "srv", 2)
    try:
        results = await asyncio.gather(
            replicate(clients[0], url_for(first)),
            replicate(clients[1], url_for(second), kind=ReplicatorType.PULL),
            replicate(server_db, f"ws://127.0.0.1:{other_listener.port}/other"),
        )
        assert [r.error for r in results] == [None, None, None]
        assert {"srv-0", "srv-1"} <= doc_ids(clients[1].default_collection())
        assert {"c0-0", "c0-1", "c0-2", "srv-0", "srv-1"} <= doc_ids(server_db.default_collection())
        assert {"srv-0", "srv-1"} <= doc_ids(other.default_collection())
    finally:
        await other_listener.stop()
        other.close()
        for db in clients:
            db.close()


async def test_events_and_status_follow_a_connection(
    make_listener, server_db: Database, client_db: Database
) -> None:
    put_docs(server_db.default_collection(), "srv", 3)
    listener = await make_listener(disable_tls=True)
    stream = listener.events()
    collected: list[ListenerEvent] = []

    async def collect() -> None:
        async for event in stream:
            collected.append(event)
            if isinstance(event, ConnectionClosed):
                return

    collector = asyncio.create_task(collect())
    await asyncio.sleep(0)  # let the stream subscribe
    status = await replicate(client_db, url_for(listener), kind=ReplicatorType.PULL)
    assert status.error is None
    await asyncio.wait_for(collector, REPLICATION_TIMEOUT)

    kinds = [type(e) for e in collected]
    assert kinds == [ConnectionOpened, ReplicationDirection, ConnectionClosed]
    _, direction, closed = collected
    assert isinstance(direction, ReplicationDirection) and direction.direction == "pull"
    assert isinstance(closed, ConnectionClosed)
    assert closed.directions == ("pull",) and closed.docs_sent == 3 and closed.by_peer
    assert closed.to_dict()["event"] == "connection-closed"
    assert closed.to_dict()["directions"] == ["pull"]
    assert listener.status.connection_count == 0


async def test_active_connection_count_and_connections(make_listener, client_db: Database):
    listener = await make_listener(disable_tls=True)
    replicator = Replicator(
        ReplicatorConfiguration(
            target=URLEndpoint(url_for(listener)),
            collections=[client_db.default_collection()],
            continuous=True,
        )
    )
    idle = asyncio.Event()
    replicator.add_change_listener(
        lambda s: idle.set() if s.activity is ActivityLevel.IDLE else None
    )
    replicator.start()
    try:
        await asyncio.wait_for(idle.wait(), REPLICATION_TIMEOUT)
        assert listener.status.connection_count == 1
        assert listener.status.active_connection_count == 0  # idle continuous replication
        (info,) = listener.connections
        assert info.peer_address == "127.0.0.1" and not info.busy
        assert "pull" in info.directions
    finally:
        replicator.stop()
        await replicator.wait_stopped(REPLICATION_TIMEOUT)


async def test_start_twice_and_stop_twice(make_listener) -> None:
    listener = await make_listener(disable_tls=True)
    with pytest.raises(ListenerStateError):
        await listener.start()
    await listener.stop()
    await listener.stop()
    await listener.start()
    assert listener.port > 0


def test_configuration_errors(server_db: Database, tmp_path) -> None:
    coll = server_db.default_collection()
    with pytest.raises(ListenerConfigError, match="at least one"):
        URLEndpointListenerConfiguration([])
    with pytest.raises(ListenerConfigError, match="port"):
        URLEndpointListenerConfiguration([coll], port=70000)
    with pytest.raises(ListenerConfigError, match="twice"):
        URLEndpointListenerConfiguration([coll, coll])
    other = Database("x", tmp_path / "x")
    with pytest.raises(ListenerConfigError, match="one database"):
        URLEndpointListenerConfiguration([coll, other.default_collection()])
    other.close()


@pytest.mark.parametrize(
    ("profile", "properties", "body"),
    [
        ("changes", {}, b'[[1,"doc","1-abc"]]'),
        ("proposeChanges", {}, b'[["doc","1-abc"]]'),
        ("rev", {"id": "doc", "rev": "1-abc", "sequence": "1"}, b"{}"),
    ],
)
async def test_read_only_answers_every_push_message_with_403(
    make_listener, server_db: Database, profile: str, properties: dict[str, str], body: bytes
) -> None:
    listener = await make_listener(disable_tls=True, read_only=True)
    conn = await blip.connect(url_for(listener) + "/_blipsync")
    try:
        with pytest.raises(blip.BlipError) as caught:
            await conn.send_request(profile, properties, body)
        assert caught.value.code == 403
        assert doc_ids(server_db.default_collection()) == set()
        # The refusal does not end the connection: reads still work.
        await conn.send_request("subChanges", {"versioning": "rev-trees"})
    finally:
        await conn.close()


async def test_ipv6_loopback_reaches_the_dual_stack_listener(
    make_listener, server_db: Database, client_db: Database
) -> None:
    if not any(a.address == "::1" for a in interface_addresses()):
        pytest.fail("this test needs an IPv6 loopback address (::1)")
    put_docs(server_db.default_collection(), "srv", 2)
    listener = await make_listener(disable_tls=True)
    url = url_for(listener, "[::1]")
    status = await replicate(client_db, url, kind=ReplicatorType.PULL)
    assert status.error is None, status.error
    assert doc_ids(client_db.default_collection()) == {"srv-0", "srv-1"}


async def test_stop_does_not_hang_on_an_unresponsive_peer(make_listener) -> None:
    listener = await make_listener(disable_tls=True)
    events: list[ListenerEvent] = []
    listener.add_event_listener(events.append)
    opened = asyncio.Event()
    listener.add_event_listener(lambda e: opened.set() if isinstance(e, ConnectionOpened) else None)
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    writer.write(
        b"GET /served/_blipsync HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: BLIP_3+CBMobile_3\r\n\r\n"
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101")
    await asyncio.wait_for(opened.wait(), REPLICATION_TIMEOUT)
    assert listener.status.connection_count == 1
    # The peer never answers the close frame (nor anything else).
    await asyncio.wait_for(listener.stop(), REPLICATION_TIMEOUT)
    assert listener.status.connection_count == 0
    assert [type(e) for e in events] == [ConnectionOpened, ConnectionClosed]
    writer.close()
