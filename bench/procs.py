"""Subprocess helpers shared by the multi-process benchmarks (latency, RSS, no-op, PouchDB).

The parent drives child processes over stdin/stdout, one JSON object a line:

- ``python -m bench.procs listen --db DIR``: a passive peer, `URLEndpointListener` on
  127.0.0.1 (ws://, any free port) serving the default collection of the database in DIR.
  Says ``{"port", "url", "pid"}``, then answers the commands ``count``, ``status`` (its own
  VmRSS / VmHWM), ``watch`` (from now on, every committed change of the collection is
  reported as an event line ``{"event": "changed", "id", "n", "t"}``; ``t`` is
  `time.monotonic()`, which on Linux is CLOCK_MONOTONIC, one clock for all processes) and
  ``quit`` (or end of stdin).
- ``python -m bench.procs replicate --db DIR --type push|pull|pushpull``: an active peer.
  Opens the database, says ``{"ready": true, "rss_mb", "hwm_mb"}``, waits for ``go URL``
  (so it can be started while the listener is still starting), runs one one-shot
  replication with URL, says ``{"seconds", "cpu_s", "completed", "total", "count",
  "hwm_mb", "rss_mb"}`` and exits.

`Child.stop` (always called from ``finally``) closes a child's stdin, which makes it quit,
and kills it if it has not exited within 10 s, so a failing benchmark leaves no process
behind.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.common import make_docs

Docs = list[tuple[str, dict[str, object]]]

#: The checkout holding the `bench` and `engine` packages (children run from it).
ROOT = Path(__file__).resolve().parent.parent
BATCH = 1000
#: Seconds to wait for a child's answer to a command (not for a whole replication).
ANSWER_TIMEOUT = 60.0
REPLICATION_TIMEOUT = 900.0
DB_NAME = "db"

# -- documents ---------------------------------------------------------------------------------

_docs: Docs = []


def cached_docs(count: int) -> Docs:
    """The first `count` documents of `make_docs` (default size and seed), generated once.

    `make_docs` costs ~0.3 ms a document (30 s for 100,000 on this machine), and it is
    deterministic and sequential, so the first k of a longer run are the documents of a run
    of k: one list serves every module of a bench run.
    """
    global _docs
    if len(_docs) < count:
        _docs = list(make_docs(count))
        # A million long-lived objects: keep them out of the GC's full scans, which would
        # otherwise stall this process's event loop (it is the active side in some runs).
        gc.freeze()
    return _docs[:count]


def docs_file(directory: Path, count: int) -> Path:
    """`count` documents as JSON lines ``[id, body]`` in `directory` (for child processes)."""
    path = directory / f"docs-{count}.jsonl"
    if not path.exists():
        with path.open("wb") as out:
            for doc in cached_docs(count):
                out.write(orjson.dumps(doc) + b"\n")
    return path


def populate(db: Any, docs: Iterable[tuple[str, dict[str, object]]]) -> int:
    """Save `docs` into the default collection of `db` in transactions of 1,000."""
    from engine.store import MutableDocument

    coll = db.default_collection()
    batch: list[tuple[str, dict[str, object]]] = []
    count = 0

    def flush() -> None:
        with db.in_batch():
            for doc_id, body in batch:
                coll.save(MutableDocument(doc_id, body))

    for doc in docs:
        batch.append(doc)
        if len(batch) == BATCH:
            flush()
            count += len(batch)
            batch = []
    if batch:
        flush()
        count += len(batch)
    return count


def populate_path(directory: Path, count: int) -> None:
    """Fill the database in `directory` with the first `count` documents, in this process."""
    from engine.store import Database

    with Database(DB_NAME, directory) as db:
        populate(db, cached_docs(count))


# -- /proc -------------------------------------------------------------------------------------


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU time a process has used so far, all threads (/proc/<pid>/stat)."""
    with open(f"/proc/{pid or 'self'}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (fields 14, 15)


def memory_mb(pid: int | None = None) -> dict[str, float]:
    """VmRSS (now) and VmHWM (peak resident set) of a process, in MB (10^6 bytes)."""
    figures: dict[str, float] = {}
    with open(f"/proc/{pid or 'self'}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                figures[key] = int(rest.split()[0]) * 1024 / 1e6
    return {"rss_mb": figures["VmRSS"], "hwm_mb": figures["VmHWM"]}


# -- the active side, in any process -----------------------------------------------------------


def replicator_type(kind: str) -> Any:
    from engine.replication import ReplicatorType

    return {
        "push": ReplicatorType.PUSH,
        "pull": ReplicatorType.PULL,
        "pushpull": ReplicatorType.PUSH_AND_PULL,
    }[kind]


async def replicate_once(
    db: Any, url: str, kind: str, expected: int | None = None, reset_checkpoint: bool = False
) -> tuple[float, Any]:
    """One one-shot replication: (seconds from start() to STOPPED, final status).

    Raises if it stopped with an error, or (if `expected` is given) did not transfer
    exactly `expected` documents.
    """
    from engine.replication import ActivityLevel, Replicator, ReplicatorConfiguration, URLEndpoint

    cfg = ReplicatorConfiguration(
        URLEndpoint(url), [db.default_collection()], replicator_type=replicator_type(kind)
    )
    replicator = Replicator(cfg)
    started = time.perf_counter()
    replicator.start(reset_checkpoint=reset_checkpoint)
    try:
        status = await replicator.wait_stopped(REPLICATION_TIMEOUT)
    except BaseException:
        replicator.stop()
        with contextlib.suppress(Exception):
            await replicator.wait_stopped(10)
        raise
    seconds = time.perf_counter() - started
    if status.activity is not ActivityLevel.STOPPED or status.error is not None:
        raise RuntimeError(f"{kind} replication failed: {status}")
    done = status.progress
    if expected is not None and (done.completed != done.total or done.total != expected):
        raise RuntimeError(f"{kind} stopped at {done.completed}/{done.total}, expected {expected}")
    return seconds, status


# -- children, seen from the parent ------------------------------------------------------------


class Child:
    """A ``python -m bench.procs ROLE ...`` subprocess speaking JSON lines."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.proc: asyncio.subprocess.Process | None = None
        self.pid = 0
        self._answers: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> dict[str, Any]:
        """Spawn the child; returns its first line."""
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p
            ),
        }
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.procs",
            *self.args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
            env=env,
            limit=1 << 20,
        )
        self.pid = self.proc.pid
        self._reader = asyncio.get_running_loop().create_task(self._read())
        return await self.answer()

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            while line := await self.proc.stdout.readline():
                data: dict[str, Any] = orjson.loads(line)
                if "event" in data:
                    self.events.put_nowait(data)
                else:
                    self._answers.put_nowait(data)
        finally:
            self._answers.put_nowait(None)

    async def answer(self, timeout: float = ANSWER_TIMEOUT) -> dict[str, Any]:
        data = await asyncio.wait_for(self._answers.get(), timeout)
        if data is None:
            self._answers.put_nowait(None)
            code = None
            if self.proc is not None:
                with contextlib.suppress(TimeoutError):
                    code = await asyncio.wait_for(self.proc.wait(), 10)
            raise RuntimeError(f"child {' '.join(self.args[:1])} exited (status {code})")
        if "error" in data:
            raise RuntimeError(f"child {' '.join(self.args[:1])}: {data['error']}")
        return data

    async def command(self, line: str, timeout: float = ANSWER_TIMEOUT) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()
        return await self.answer(timeout)

    def memory(self) -> dict[str, float]:
        """The child's VmRSS / VmHWM read from /proc by the parent."""
        return memory_mb(self.pid)

    async def stop(self) -> None:
        """Close the child's stdin (it quits on end of input); kill it if it has not exited
        within 10 s. Always safe to call."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 10)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            if self._reader is not None:
                self._reader.cancel()
                with contextlib.suppress(BaseException):
                    await self._reader


class Listener(Child):
    """A passive peer process (``bench.procs listen``)."""

    def __init__(self, directory: Path) -> None:
        super().__init__("listen", "--db", str(directory))
        self.url = ""

    async def start(self) -> dict[str, Any]:
        hello = await super().start()
        self.url = str(hello["url"])
        return hello

    async def count(self) -> int:
        return int((await self.command("count"))["count"])


@dataclass
class ProcessRun:
    """One replication between an active process and a listener process."""

    seconds: float  # start() to STOPPED, measured in the active process
    active_hwm_mb: float
    active_idle_mb: float  # RSS of the active process with its database open, before start
    passive_hwm_mb: float
    passive_idle_mb: float  # RSS of the listener once it serves, before the replication
    active_cpu_s: float  # CPU time (all threads) of the active process during the replication
    passive_cpu_s: float  # the same of the listener process (read from /proc around it)


async def replicate_in_processes(peer: Path, database: Path, kind: str, count: int) -> ProcessRun:
    """A one-shot `kind` replication of `count` docs: a new ``replicate`` process on
    `database` against a new listener process serving `peer`, each side in its own process
    (like the PouchDB baseline's client and server). Checks that `count` documents moved
    and that both ends hold them."""
    listener = Listener(peer)
    active = Child("replicate", "--db", str(database), "--type", kind)
    try:
        ready = (await asyncio.gather(listener.start(), active.start()))[1]
        idle = listener.memory()["rss_mb"]
        cpu = cpu_seconds(listener.pid)
        done = await active.command(f"go {listener.url}", timeout=REPLICATION_TIMEOUT)
        cpu = cpu_seconds(listener.pid) - cpu
        passive = listener.memory()
        held = await listener.count()
    finally:
        await asyncio.gather(active.stop(), listener.stop())
    if (done["completed"], done["total"], done["count"], held) != (count,) * 4:
        raise RuntimeError(f"{kind} of {count} docs: {done}, the listener holds {held}")
    return ProcessRun(
        done["seconds"],
        done["hwm_mb"],
        ready["rss_mb"],
        passive["hwm_mb"],
        idle,
        done["cpu_s"],
        cpu,
    )


# -- children, their side ----------------------------------------------------------------------


def _say(data: dict[str, Any]) -> None:
    sys.stdout.buffer.write(orjson.dumps(data) + b"\n")
    sys.stdout.buffer.flush()


async def _stdin_reader() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def _listen(directory: Path) -> None:
    from engine.listener import URLEndpointListener, URLEndpointListenerConfiguration
    from engine.store import CollectionChange, Database

    db = Database(DB_NAME, directory)
    coll = db.default_collection()
    listener = URLEndpointListener(
        URLEndpointListenerConfiguration(
            [coll], port=0, network_interface="127.0.0.1", disable_tls=True
        )
    )
    watching = False

    def changed(change: CollectionChange) -> None:
        # Runs on this event loop (registered from it), right after B's commit: the moment
        # the edit is visible to an application on B. Read `n` to name the edit.
        now = time.monotonic()
        if not watching:
            return
        for doc_id in change.document_ids:
            doc = coll.get_document(doc_id)
            n = doc.properties.get("n") if doc is not None else None
            _say({"event": "changed", "id": doc_id, "n": n, "t": now})

    token = coll.add_change_listener(changed)
    await listener.start()
    try:
        _say(
            {
                "port": listener.port,
                "url": f"ws://127.0.0.1:{listener.port}/{DB_NAME}",
                "pid": os.getpid(),
            }
        )

        async def watch() -> dict[str, Any]:
            nonlocal watching
            watching = True
            return {"ok": True}

        async def count() -> dict[str, Any]:
            return {"count": await db.run(lambda: coll.count)}

        async def status() -> dict[str, Any]:
            return memory_mb()

        commands = {"count": count, "status": status, "watch": watch}
        reader = await _stdin_reader()
        while (line := (await reader.readline()).decode().strip()) not in ("", "quit"):
            handler = commands.get(line)
            _say(await handler() if handler else {"error": f"unknown command {line!r}"})
    finally:
        token.remove()
        await listener.stop()
        db.close()


async def _replicate(directory: Path, kind: str) -> None:
    from engine.store import Database

    db = Database(DB_NAME, directory)
    try:
        _say({"ready": True, **memory_mb()})
        reader = await _stdin_reader()
        line = (await reader.readline()).decode().strip()
        command, _, url = line.partition(" ")
        if command != "go":
            return
        cpu = cpu_seconds()
        seconds, status = await replicate_once(db, url, kind)
        cpu = cpu_seconds() - cpu
        count = await db.run(lambda: db.default_collection().count)
        _say(
            {
                "seconds": seconds,
                "cpu_s": cpu,
                "completed": status.progress.completed,
                "total": status.progress.total,
                "count": count,
                **memory_mb(),
            }
        )
    finally:
        db.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.procs", description=__doc__)
    sub = parser.add_subparsers(dest="role", required=True)
    listen = sub.add_parser("listen")
    listen.add_argument("--db", required=True, type=Path)
    rep = sub.add_parser("replicate")
    rep.add_argument("--db", required=True, type=Path)
    rep.add_argument("--type", choices=["push", "pull", "pushpull"], required=True)
    args = parser.parse_args(argv)
    try:
        if args.role == "listen":
            asyncio.run(_listen(args.db))
        else:
            asyncio.run(_replicate(args.db, args.type))
    except KeyboardInterrupt:
        return 1
    except Exception as exc:  # report to the parent, which raises it
        _say({"error": f"{type(exc).__name__}: {exc}"})
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
