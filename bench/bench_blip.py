"""BLIP over ws:// on loopback against plain websockets; server and client in two processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import time
from collections.abc import Callable, Coroutine
from multiprocessing.queues import Queue
from typing import Any

from bench.common import Result, make_docs

IN_FLIGHT = 32
PAYLOAD = 1024


# -- servers (child processes) -----------------------------------------------------------------


async def _blip_server(ports: Queue[int]) -> None:
    from engine.blip import BlipConnection, IncomingRequest, OutgoingReply, serve

    reply = b"r" * PAYLOAD

    async def echo(request: IncomingRequest) -> OutgoingReply:
        return OutgoingReply(None, reply)

    async def sink(request: IncomingRequest) -> OutgoingReply:
        return OutgoingReply({"size": str(len(request.body))})

    def on_connection(conn: BlipConnection) -> None:
        conn.register_handler("echo", echo)
        conn.register_handler("sink", sink)

    server = await serve(on_connection, "127.0.0.1", 0)
    ports.put(server.sockets[0].getsockname()[1])
    await asyncio.Future()


async def _ws_server(ports: Queue[int]) -> None:
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.exceptions import ConnectionClosed

    async def echo(ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):  # the client leaves mid-stream
            async for message in ws:
                await ws.send(message)

    server = await serve(echo, "127.0.0.1", 0, compression=None)
    ports.put(server.sockets[0].getsockname()[1])
    await asyncio.Future()


def _serve(kind: str, ports: Queue[int]) -> None:
    asyncio.run(_blip_server(ports) if kind == "blip" else _ws_server(ports))


# -- clients (child processes) -----------------------------------------------------------------


async def _blip_rate(port: int, seconds: float) -> float:
    from engine.blip import connect

    conn = await connect(f"ws://127.0.0.1:{port}/", ping_interval=None)
    body = b"q" * PAYLOAD
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            reply = await conn.send_request("echo", None, body)
            assert reply is not None and len(reply.body) == PAYLOAD
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    elapsed = time.perf_counter() - started
    await conn.close()
    return done / elapsed


async def _ws_rate(port: int, seconds: float) -> float:
    from websockets.asyncio.client import connect

    async with connect(f"ws://127.0.0.1:{port}/", compression=None, ping_interval=None) as ws:
        body = b"q" * PAYLOAD
        slots = asyncio.Semaphore(IN_FLIGHT)

        async def send() -> None:
            while True:
                await slots.acquire()
                await ws.send(body)

        sender = asyncio.create_task(send())
        done = 0
        started = time.perf_counter()
        deadline = started + seconds
        while True:
            message = await ws.recv()
            assert len(message) == PAYLOAD
            done += 1
            slots.release()
            if time.perf_counter() >= deadline:
                break
        elapsed = time.perf_counter() - started
        sender.cancel()
    return done / elapsed


async def _blip_transfer(port: int, size: int, compressed: bool) -> float:
    from engine.blip import connect

    chunk = json.dumps([doc for _, doc in make_docs(1100)]).encode()[: 1 << 20]
    data = (chunk * (size // len(chunk) + 1))[:size]
    conn = await connect(f"ws://127.0.0.1:{port}/", ping_interval=None)
    started = time.perf_counter()
    reply = await conn.send_request("sink", None, data, compressed=compressed)
    elapsed = time.perf_counter() - started
    assert reply is not None and reply.properties["size"] == str(size)
    await conn.close()
    return size / 1e6 / elapsed


def _client(job: str, args: tuple[Any, ...], results: Queue[float]) -> None:
    jobs: dict[str, Callable[..., Coroutine[Any, Any, float]]] = {
        "blip-rate": _blip_rate,
        "ws-rate": _ws_rate,
        "blip-transfer": _blip_transfer,
    }
    results.put(asyncio.run(jobs[job](*args)))


# -- driver --------------------------------------------------------------------------------------


class _Servers:
    """The BLIP and websockets echo servers, each in its own process."""

    def __init__(self) -> None:
        self.ctx = multiprocessing.get_context("spawn")
        self.procs: list[multiprocessing.process.BaseProcess] = []
        self.ports: dict[str, int] = {}

    def __enter__(self) -> _Servers:
        for kind in ("blip", "ws"):
            ports: Queue[int] = self.ctx.Queue()
            proc = self.ctx.Process(target=_serve, args=(kind, ports), daemon=True)
            proc.start()
            self.procs.append(proc)
            self.ports[kind] = ports.get(timeout=60)
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            proc.terminate()
            proc.join()

    def client(self, job: str, *args: Any) -> float:
        """Run one client job in a fresh process; return its figure."""
        results: Queue[float] = self.ctx.Queue()
        port = self.ports["ws" if job.startswith("ws") else "blip"]
        proc = self.ctx.Process(target=_client, args=(job, (port, *args), results))
        proc.start()
        try:
            return results.get(timeout=600)
        finally:
            proc.join()


def run(quick: bool) -> list[Result]:
    seconds = 2.0 if quick else 10.0
    size = (5 if quick else 50) * 1_000_000
    # Alternate BLIP and the baseline in rounds so that background load hits both alike.
    rounds = 2 if quick else 5
    blip_rates, ws_rates = [], []
    with _Servers() as servers:
        for _ in range(rounds):
            blip_rates.append(servers.client("blip-rate", seconds / rounds))
            ws_rates.append(servers.client("ws-rate", seconds / rounds))
        plain = servers.client("blip-transfer", size, False)
        packed = servers.client("blip-transfer", size, True)
    mb = size // 1_000_000
    return [
        Result(
            f"blip 1 KB request/reply, {IN_FLIGHT} in flight",
            sum(blip_rates) / rounds,
            "req/s",
            baseline=sum(ws_rates) / rounds,
            baseline_name=f"websockets echo 1 KB, {IN_FLIGHT} in flight (msg/s)",
            goal=0.5,
        ),
        Result(f"blip one {mb} MB message, uncompressed", plain, "MB/s"),
        Result(
            f"blip one {mb} MB message, compressed",
            packed,
            "MB/s",
            note="JSON of random words: deflates 1.4x, zlib itself runs ~25-35 MB/s here",
        ),
    ]
