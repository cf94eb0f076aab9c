"""A TCP proxy on 127.0.0.1 that misbehaves on demand (test support for tests/faults).

Every accepted connection is forwarded to ``upstream`` (changeable, e.g. after restarting
the peer on another port). Faults, all callable while traffic flows:

- ``cut_after(n)``: abort (RST) the connection carrying the n-th next forwarded byte;
- ``stall(t)``: forward nothing for t seconds (bytes are kept and delivered afterwards);
- ``throttle(b)``: forward at most b bytes per second in each direction;
- ``corrupt_next(direction)``: flip one bit of the next chunk forwarded that way;
- ``drop()``: black-hole the open connections: keep their sockets open but forward
  nothing either way any more (a peer that vanished without closing).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
import time
from dataclasses import dataclass, field

__all__ = ["Direction", "FaultProxy", "ProxyStats"]

CHUNK = 64 * 1024


class Direction(enum.Enum):
    UP = "client->server"
    DOWN = "server->client"


@dataclass
class ProxyStats:
    connections: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    cuts: int = 0
    corrupted: int = 0
    dropped: int = 0  # connections black-holed
    #: monotonic times of the cuts
    cut_times: list[float] = field(default_factory=list)


@dataclass(eq=False)
class _Link:
    """One proxied connection: both sockets and the pumps between them."""

    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    dropped: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def abort(self) -> None:
        for writer in (self.client, self.server):
            writer.transport.abort()


class FaultProxy:
    """Forwards 127.0.0.1:<port> to upstream, with injectable faults."""

    def __init__(self, upstream_port: int, *, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.stats = ProxyStats()
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._cut_budget: int | None = None
        self._cut_done = asyncio.Event()
        self._stall_until = 0.0
        self._rate: float | None = None
        self._corrupt: set[Direction] = set()

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._server is not None, "proxy not started"
        return int(self._server.sockets[0].getsockname()[1])

    def url(self, db_name: str, *, tls: bool = False) -> str:
        return f"{'wss' if tls else 'ws'}://127.0.0.1:{self.port}/{db_name}"

    async def start(self, port: int = 0) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.abort()
            for task in link.tasks:
                task.cancel()
        tasks = [t for link in self._links for t in link.tasks]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    @property
    def open_connections(self) -> int:
        return len(self._links)

    # -- faults -------------------------------------------------------------------------------

    def cut_after(self, n: int) -> asyncio.Event:
        """Abort the connection that forwards the n-th byte from now (n >= 1); one-shot.

        Returns an event set when the cut happened.
        """
        if n < 1:
            raise ValueError("n must be >= 1")
        self._cut_budget = n
        self._cut_done = asyncio.Event()
        return self._cut_done

    def cut_randomly(self, rng: random.Random, low: int, high: int) -> tuple[int, asyncio.Event]:
        n = rng.randint(low, high)
        return n, self.cut_after(n)

    def cancel_cut(self) -> None:
        self._cut_budget = None

    @property
    def cut_pending(self) -> bool:
        return self._cut_budget is not None

    def stall(self, seconds: float) -> None:
        """Forward nothing (either way, every connection) for `seconds`."""
        self._stall_until = max(self._stall_until, time.monotonic() + seconds)

    def throttle(self, bytes_per_second: float | None) -> None:
        """Forward at most this many bytes per second per direction (None: no limit)."""
        if bytes_per_second is not None and bytes_per_second <= 0:
            raise ValueError("bytes_per_second must be positive")
        self._rate = bytes_per_second

    def corrupt_next(self, direction: Direction) -> None:
        """Flip one bit of the next chunk forwarded in `direction` (its middle byte); one-shot."""
        self._corrupt.add(direction)

    def drop(self) -> int:
        """Black-hole every open connection (sockets stay open); returns how many."""
        count = 0
        for link in self._links:
            if not link.dropped:
                link.dropped = True
                count += 1
        self.stats.dropped += count
        return count

    def reset_all(self) -> int:
        """Abort (RST) every open connection, black-holed ones included; returns how many."""
        links = list(self._links)
        for link in links:
            link.abort()
        return len(links)

    # -- forwarding ---------------------------------------------------------------------------

    async def _accept(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        try:
            s_reader, s_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            c_writer.transport.abort()  # upstream down: the client sees a reset
            return
        self.stats.connections += 1
        link = _Link(c_writer, s_writer)
        self._links.add(link)
        up = asyncio.create_task(self._pump(link, c_reader, s_writer, Direction.UP))
        down = asyncio.create_task(self._pump(link, s_reader, c_writer, Direction.DOWN))
        link.tasks = [up, down]
        try:
            await asyncio.gather(up, down, return_exceptions=True)
        finally:
            self._links.discard(link)
            link.abort()

    async def _pump(
        self,
        link: _Link,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        direction: Direction,
    ) -> None:
        try:
            while True:
                size = CHUNK if self._rate is None else max(1, min(CHUNK, int(self._rate / 20)))
                data = await reader.read(size)
                if not data:
                    if not link.dropped:
                        with contextlib.suppress(OSError):
                            writer.write_eof()
                    return
                delay = self._stall_until - time.monotonic()
                while delay > 0:
                    await asyncio.sleep(delay)
                    delay = self._stall_until - time.monotonic()
                if link.dropped:
                    continue  # read and discard: the peer never hears of it
                data = self._maybe_corrupt(data, direction)
                cut = False
                if self._cut_budget is not None:
                    if len(data) >= self._cut_budget:
                        data, cut = data[: self._cut_budget - 1], True
                    else:
                        self._cut_budget -= len(data)
                if data:
                    writer.write(data)
                    if direction is Direction.UP:
                        self.stats.bytes_up += len(data)
                    else:
                        self.stats.bytes_down += len(data)
                if cut:
                    self._cut_budget = None
                    self.stats.cuts += 1
                    self.stats.cut_times.append(time.monotonic())
                    await _flushed(writer)  # exactly n-1 bytes get through, then the reset
                    link.abort()
                    self._cut_done.set()
                    return
                await writer.drain()
                if self._rate is not None:
                    await asyncio.sleep(len(data) / self._rate)
        except (ConnectionError, OSError):
            link.abort()

    def _maybe_corrupt(self, data: bytes, direction: Direction) -> bytes:
        if direction not in self._corrupt:
            return data
        self._corrupt.discard(direction)
        self.stats.corrupted += 1
        i = len(data) // 2  # mid-chunk: inside a TLS record's ciphertext, not its header
        return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]


async def _flushed(writer: asyncio.StreamWriter, timeout: float = 1.0) -> None:
    """Wait until the transport has handed everything written to the kernel."""
    writer.transport.set_write_buffer_limits(0)  # drain() now waits for an empty buffer
    with contextlib.suppress(TimeoutError, ConnectionError):
        await asyncio.wait_for(writer.drain(), timeout)
