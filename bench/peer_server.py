"""A passive replication peer for benchmarks: ``python -m bench.peer_server --db DIR --port 0``.

Serves the database in ``DIR`` over ws:// with `blip.serve` + a passive
`ReplicationSession` per connection, and prints one JSON line ``{"port": N}`` on stdout.
It then obeys one-line commands on stdin, answering each with one JSON line on stdout:

- ``lag-start``: (re)start sampling this process's event-loop lag
- ``lag-stop``: stop sampling; answer ``{"samples": n, "max_ms": .., "p99_ms": .., ...}``
- ``count``: answer ``{"count": live documents in the default collection}``
- ``cpu``: answer ``{"cpu": CPU seconds this process has used, all threads}``
- ``profile-start`` / ``profile-stop FILE``: cProfile the process (writes pstats to FILE)
- ``quit`` (or end of stdin): close the server and the database, exit 0

A real listener module can replace this later; the benchmark only needs the port, the lag
report and the count.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import sys
import time
from pathlib import Path
from typing import Any

import orjson

#: How often the lag probe wakes up (seconds).
LAG_INTERVAL = 0.010


class LoopLag:
    """Samples how late an asyncio task that sleeps `interval` repeatedly wakes up."""

    def __init__(self, interval: float = LAG_INTERVAL) -> None:
        self.interval = interval
        self.samples: list[float] = []  # lateness in seconds
        #: CPU the loop's thread used while each sample waited, capped at its lateness:
        #: near the lateness, the loop was busy (a real stall); near 0, it was waiting
        #: (for the GIL, a lock, or a CPU the machine's other processes held).
        self.busy: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.stop_nowait()
        self.samples = []
        self.busy = []
        self._task = asyncio.get_running_loop().create_task(self._probe(), name="loop-lag")

    def stop_nowait(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def stop(self) -> dict[str, float]:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return self.summary()

    async def _probe(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval
            cpu = time.thread_time()
            await asyncio.sleep(self.interval)
            late = max(0.0, loop.time() - due)
            self.samples.append(late)
            self.busy.append(min(late, time.thread_time() - cpu))

    def summary(self) -> dict[str, float]:
        summary = lag_summary(self.samples)
        if self.samples:
            worst = max(range(len(self.samples)), key=self.samples.__getitem__)
            summary["max_busy_ms"] = self.busy[worst] * 1000
        return summary


def lag_summary(samples: list[float]) -> dict[str, float]:
    """Count, max, p99, p50 and mean of lag samples, in milliseconds."""
    if not samples:
        return {"samples": 0, "max_ms": 0.0, "p99_ms": 0.0, "p50_ms": 0.0, "mean_ms": 0.0}
    ordered = sorted(samples)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

    return {
        "samples": len(ordered),
        "max_ms": ordered[-1] * 1000,
        "p99_ms": pct(0.99),
        "p50_ms": pct(0.50),
        "mean_ms": sum(ordered) / len(ordered) * 1000,
    }


def _say(data: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps(data).decode() + "\n")
    sys.stdout.flush()


async def _stdin_lines() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def serve_peer(
    directory: Path, name: str, host: str, port: int, *, rev_batches: bool = True
) -> None:
    from engine.blip import BlipConnection, serve
    from engine.replication import ReplicationSession, SessionOptions, server_header
    from engine.store import Database

    db = Database(name, directory)
    sessions: set[ReplicationSession] = set()
    options = SessionOptions(rev_batches=rev_batches)

    def on_connection(conn: BlipConnection) -> None:
        session = ReplicationSession(
            conn, db, active=False, collections=[db.default_collection()], options=options
        )
        sessions.add(session)

    # Announced as a Peerbase listener announces itself (it takes branches and batches).
    server = await serve(on_connection, host, port, server_header=server_header(options))
    lag = LoopLag()
    profiler: cProfile.Profile | None = None
    try:
        _say({"port": server.sockets[0].getsockname()[1], "pid": _pid()})
        reader = await _stdin_lines()
        while line := (await reader.readline()).decode():
            command, _, arg = line.strip().partition(" ")
            if command == "lag-start":
                lag.start()
                _say({"ok": True, "time": time.time()})
            elif command == "lag-stop":
                _say(await lag.stop())
            elif command == "cpu":
                _say({"cpu": time.process_time()})
            elif command == "count":
                count = await db.run(lambda: db.default_collection().count)
                _say({"count": count})
            elif command == "profile-start":
                profiler = cProfile.Profile()
                profiler.enable()
                _say({"ok": True})
            elif command == "profile-stop":
                if profiler is not None:
                    profiler.disable()
                    profiler.dump_stats(arg)
                    profiler = None
                _say({"ok": True})
            elif command == "quit":
                break
            elif command:
                _say({"error": f"unknown command {command!r}"})
    finally:
        lag.stop_nowait()
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 5)
        for session in sessions:
            with contextlib.suppress(Exception):
                await session.close()
        db.close()
    _say({"bye": True})


def _pid() -> int:
    import os

    return os.getpid()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peer_server", description=__doc__)
    parser.add_argument("--db", required=True, type=Path, help="directory holding the database")
    parser.add_argument("--name", default="server", help="database name (the URL's path)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument(
        "--standard",
        action="store_true",
        help="one `rev` per revision, as with Couchbase Lite (no `revs` batches)",
    )
    args = parser.parse_args(argv)
    asyncio.run(serve_peer(args.db, args.name, args.host, args.port, rev_batches=not args.standard))
    return 0


if __name__ == "__main__":
    sys.exit(main())
