"""The asyncio adapter over real WebSocket connections on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import websockets
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import Server

from engine.blip import (
    BLIP_SUBPROTOCOL,
    FRAME_SIZE,
    MAX_UNACKED,
    BlipConnection,
    BlipError,
    BlipLimits,
    ConnectionClosedError,
    IncomingRequest,
    OutgoingReply,
    Response,
    connect,
    serve,
)

OnConnection = Callable[[BlipConnection], Awaitable[None] | None]


async def echo(request: IncomingRequest) -> OutgoingReply:
    return OutgoingReply({"seen": request.profile, **request.properties}, request.body)


async def conflict(request: IncomingRequest) -> OutgoingReply:
    raise BlipError("HTTP", 409, "document update conflict", properties={"rev": "2-a"})


async def crash(request: IncomingRequest) -> OutgoingReply:
    raise RuntimeError("boom")


class Peer:
    """A BLIP server on a free port that records its connections."""

    def __init__(self) -> None:
        self.server: Server | None = None
        self.connections: list[BlipConnection] = []
        self.setup: OnConnection | None = None

    async def start(self, setup: OnConnection | None = None, **kwargs: object) -> int:
        self.setup = setup

        async def on_connection(conn: BlipConnection) -> None:
            self.connections.append(conn)
            conn.register_handler("echo", echo)
            conn.register_handler("conflict", conflict)
            conn.register_handler("crash", crash)
            if self.setup is not None:
                result = self.setup(conn)
                if result is not None:
                    await result

        self.server = await serve(on_connection, "127.0.0.1", 0, **kwargs)  # type: ignore[arg-type]
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()
        for conn in self.connections:
            await conn.wait_closed()


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    peer = Peer()
    yield peer
    await peer.stop()
    # No task may outlive the connections.
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def open_client(peer: Peer, setup: OnConnection | None = None) -> BlipConnection:
    port = await peer.start(setup)
    return await connect(f"ws://127.0.0.1:{port}/db/_blipsync", ping_interval=None)


async def test_request_response(peer: Peer) -> None:
    client = await open_client(peer)
    assert client.websocket.subprotocol == BLIP_SUBPROTOCOL
    reply = await client.send_request("echo", {"a": "1"}, b'{"x": [1, 2]}')
    assert isinstance(reply, Response)
    assert reply.properties == {"seen": "echo", "Profile": "echo", "a": "1"}
    assert reply.json() == {"x": [1, 2]}
    assert await client.send_request("echo", no_reply=True) is None
    await client.close()
    assert client.closed and client.close_code == 1000 and client.closed_by_peer is False


async def test_error_replies_are_typed(peer: Peer) -> None:
    client = await open_client(peer)
    with pytest.raises(BlipError) as info:
        await client.send_request("conflict")
    assert (info.value.domain, info.value.code) == ("HTTP", 409)
    assert info.value.message == "document update conflict"
    assert info.value.properties == {"rev": "2-a"}
    with pytest.raises(BlipError) as info:
        await client.send_request("crash")
    assert (info.value.domain, info.value.code) == ("BLIP", 501)
    # The connection survives a failing handler.
    reply = await client.send_request("echo", body=b"still here")
    assert reply is not None and reply.body == b"still here"
    await client.close()


async def test_unknown_profile_gets_404_and_default_handler(peer: Peer) -> None:
    client = await open_client(peer)
    with pytest.raises(BlipError) as info:
        await client.send_request("nope")
    assert (info.value.domain, info.value.code) == ("BLIP", 404)

    async def fallback(request: IncomingRequest) -> None:
        return None

    peer.connections[0].set_default_handler(fallback)
    reply = await client.send_request("nope")
    assert reply is not None and reply.body == b"" and reply.properties == {}
    await client.close()


async def test_the_server_can_send_requests_too(peer: Peer) -> None:
    client = await open_client(peer)
    client.register_handler("echo", echo)
    server_side = peer.connections[0]
    reply = await server_side.send_request("echo", body=b"ping", urgent=True, compressed=True)
    assert reply is not None and reply.body == b"ping"
    assert reply.urgent and reply.compressed  # the reply inherits the request's flags
    await client.close()


async def test_wrong_or_missing_subprotocol_is_rejected_with_400(peer: Peer) -> None:
    port = await peer.start()
    for offered in (["BLIP_3+CBMobile_2"], None):
        with pytest.raises(websockets.InvalidStatus) as info:
            async with ws_connect(f"ws://127.0.0.1:{port}/", subprotocols=offered):
                pass
        response = info.value.response
        assert response.status_code == 400
        assert b"subprotocol" in response.body


async def test_client_rejects_a_server_without_blip(peer: Peer) -> None:
    async def plain(ws: websockets.asyncio.server.ServerConnection) -> None:
        await ws.wait_closed()

    async with websockets.asyncio.server.serve(plain, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(BlipError, match="subprotocol"):
            await connect(f"ws://127.0.0.1:{port}/", ping_interval=None)
    peer.server = server


async def test_text_message_is_fatal(peer: Peer) -> None:
    port = await peer.start()
    async with ws_connect(f"ws://127.0.0.1:{port}/", subprotocols=[BLIP_SUBPROTOCOL]) as ws:
        await ws.send("hello")
        with pytest.raises(websockets.ConnectionClosedError):
            await ws.recv()
        assert ws.close_code == 1003
    await peer.connections[0].wait_closed()
    assert peer.connections[0].closed_by_peer is False


async def test_text_message_fails_pending_requests() -> None:
    async def rude(ws: websockets.asyncio.server.ServerConnection) -> None:
        await ws.recv()
        await ws.send("not BLIP")
        await ws.wait_closed()

    async with websockets.asyncio.server.serve(
        rude, "127.0.0.1", 0, subprotocols=[BLIP_SUBPROTOCOL]
    ) as server:
        port = server.sockets[0].getsockname()[1]
        client = await connect(f"ws://127.0.0.1:{port}/", ping_interval=None)
        with pytest.raises(ConnectionClosedError) as info:
            await client.send_request("echo")
        assert info.value.close_code == 1003 and info.value.by_peer is False
    assert client.closed


async def test_oversized_frame_closes_with_1009(peer: Peer) -> None:
    port = await peer.start(limits=BlipLimits(max_frame_size=10_000))
    async with ws_connect(f"ws://127.0.0.1:{port}/", subprotocols=[BLIP_SUBPROTOCOL]) as ws:
        await ws.send(b"\x01\x00" + bytes(20_000))
        with pytest.raises(websockets.ConnectionClosedError):
            await ws.recv()
        assert ws.close_code == 1009


async def test_many_concurrent_requests(peer: Peer) -> None:
    client = await open_client(peer)
    bodies = [str(i).encode() * (i % 50 + 1) for i in range(300)]
    replies = await asyncio.gather(
        *(
            client.send_request("echo", {"i": str(i)}, body, urgent=i % 3 == 0)
            for i, body in enumerate(bodies)
        )
    )
    for i, reply in enumerate(replies):
        assert reply is not None
        assert reply.properties["i"] == str(i) and reply.body == bodies[i]
    await client.close()


async def chunks(total: int, size: int, produced: list[int]) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        chunk = bytes([sent // size % 256]) * min(size, total - sent)
        sent += len(chunk)
        produced.append(sent)
        yield chunk


async def test_streaming_request_body_to_a_streaming_handler(peer: Peer) -> None:
    total = 3_000_000
    produced: list[int] = []
    worst = 0
    digest: list[int] = []

    async def sink(request: IncomingRequest) -> OutgoingReply:
        nonlocal worst
        consumed = 0
        assert request.streamed
        async for chunk in request.stream():
            consumed += len(chunk)
            digest.append(chunk[0])
            # The sender never gets further ahead than the window plus its small buffer.
            worst = max(worst, produced[-1] - consumed)
            for _ in range(3):
                await asyncio.sleep(0)  # a slow consumer
        return OutgoingReply({"consumed": str(consumed)})

    def setup(conn: BlipConnection) -> None:
        conn.register_handler("upload", sink, streaming=True)

    client = await open_client(peer, setup)
    reply = await client.send_request("upload", body=chunks(total, 50_000, produced))
    assert reply is not None and reply.properties == {"consumed": str(total)}
    assert worst <= MAX_UNACKED + 3 * FRAME_SIZE + 50_000 + 16 * 20
    assert worst > 0
    await client.close()


async def test_streaming_response_body(peer: Peer) -> None:
    total = 2_000_000

    async def download(request: IncomingRequest) -> OutgoingReply:
        return OutgoingReply({"size": str(total)}, chunks(total, 30_000, []), compressed=True)

    def setup(conn: BlipConnection) -> None:
        conn.register_handler("download", download)

    client = await open_client(peer, setup)
    reply = await client.send_request("download", stream_response=True)
    assert reply is not None and reply.properties == {"size": str(total)}
    with pytest.raises(BlipError):
        _ = reply.body  # streamed: read it first
    received = 0
    async for chunk in reply.stream():
        received += len(chunk)
    assert received == total
    # A non-streaming caller gets the same body buffered.
    again = await client.send_request("download")
    assert again is not None and len(again.body) == total
    assert again.body[30_000] == 1 and again.body[-1] == (total - 1) // 30_000 % 256
    await client.close()


def hanging_handler(started: asyncio.Event) -> Callable[[BlipConnection], None]:
    """Setup registering "forever": a handler that never returns."""

    async def forever(request: IncomingRequest) -> None:
        started.set()
        await asyncio.Event().wait()

    def setup(conn: BlipConnection) -> None:
        conn.register_handler("forever", forever)

    return setup


async def test_clean_close_fails_pending_requests(peer: Peer) -> None:
    started = asyncio.Event()
    client = await open_client(peer, hanging_handler(started))
    pending = asyncio.create_task(client.send_request("forever"))
    await started.wait()
    await client.close(1000, "bye")
    with pytest.raises(ConnectionClosedError) as info:
        await pending
    assert info.value.close_code == 1000 and info.value.by_peer is False
    with pytest.raises(ConnectionClosedError):
        await client.send_request("echo")
    server_side = peer.connections[0]
    await server_side.wait_closed()
    assert server_side.closed_by_peer is True and server_side.close_reason == "bye"


async def test_server_closing_fails_the_clients_pending_requests(peer: Peer) -> None:
    async def hang_up(request: IncomingRequest) -> None:
        await peer.connections[0].close(1001, "going away")

    def setup(conn: BlipConnection) -> None:
        conn.register_handler("hang-up", hang_up)

    client = await open_client(peer, setup)
    with pytest.raises(ConnectionClosedError) as info:
        await client.send_request("hang-up")
    assert info.value.by_peer is True and info.value.close_code == 1001
    await client.wait_closed()
    assert client.closed_by_peer is True and client.close_reason == "going away"


async def test_abrupt_close_fails_pending_requests(peer: Peer) -> None:
    started = asyncio.Event()
    client = await open_client(peer, hanging_handler(started))
    pending = [asyncio.create_task(client.send_request("forever")) for _ in range(5)]
    await started.wait()
    client.websocket.transport.abort()
    for task in pending:
        with pytest.raises(ConnectionClosedError) as info:
            await task
        assert info.value.close_code == 1006
    await client.wait_closed()
    await peer.connections[0].wait_closed()
    assert peer.connections[0].close_code == 1006


async def test_a_cancelled_request_does_not_disturb_the_connection(peer: Peer) -> None:
    release = asyncio.Event()

    async def slow(request: IncomingRequest) -> OutgoingReply:
        await release.wait()
        return OutgoingReply({"late": "1"}, b"x" * 100_000)

    def setup(conn: BlipConnection) -> None:
        conn.register_handler("slow", slow)

    client = await open_client(peer, setup)
    pending = asyncio.create_task(client.send_request("slow"))
    await asyncio.sleep(0)
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    release.set()
    # The late, multi-frame reply is dropped quietly; the next request works.
    reply = await client.send_request("echo", body=b"after")
    assert reply is not None and reply.body == b"after"
    await client.close()


async def test_message_size_limit_closes_with_1009(peer: Peer) -> None:
    port = await peer.start(limits=BlipLimits(max_message_size=100_000))
    client = await connect(f"ws://127.0.0.1:{port}/", ping_interval=None)
    with pytest.raises(ConnectionClosedError) as info:
        await client.send_request("echo", body=bytes(200_000))
    assert info.value.close_code == 1009 and info.value.by_peer is True
    assert "exceeds" in info.value.close_reason
