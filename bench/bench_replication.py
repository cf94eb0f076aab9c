"""Replication over ws:// on loopback between two processes vs a raw sqlite3 + orjson pipeline.

Push: this process holds N ~1 KB documents and pushes them to an empty passive peer
(`bench.peer_server`, a separate process). Pull: a fresh, empty database in this process
pulls the N documents back from that peer. Each direction is timed from `start()` to
STOPPED and checked (completed == total == N, document counts on both sides).

The baseline is the raw pipeline of the same documents: sqlite3 inserts with orjson in
batches of 1,000 (WAL) followed by reading them all back with orjson.loads, as docs/s of
insert + read time. It is measured before the push, between push and pull, and after the
pull; each direction is compared with the mean of the two baseline runs around it, so drift
in machine speed hits both sides alike. `make bench` runs three such rounds (fresh databases
and peer each time) and reports, per direction, the round with the median ratio: this
2-core host's speed drifts by 20% within a minute, and a single round's ratio with it.

The receiving process's event-loop lag (a task sleeping 10 ms, how late it wakes) is
sampled during each direction: the peer process while it receives the push, this process
while it pulls.

``python -m bench.bench_replication [--quick] [--rounds N] [--profile DIR]`` runs it alone; with
``--profile`` both processes are cProfiled during each direction (pstats files in DIR).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench.bench_store import _raw as raw_insert_and_read
from bench.common import Result, make_docs, median_by, print_table
from bench.peer_server import LoopLag, lag_summary

BATCH = 1000
GOAL_RATIO = 0.25
GOAL_LAG_MS = 100.0
REPLICATION_TIMEOUT = 900.0
PEER_TIMEOUT = 60.0

Docs = list[tuple[str, dict[str, object]]]
#: The checkout holding the `bench` and `engine` packages (the peer process runs from it).
_ROOT = Path(__file__).resolve().parent.parent


# -- baseline: raw sqlite3 + orjson --------------------------------------------------------------


def raw_pipeline(directory: Path, docs: Docs) -> float:
    """docs/s of inserting `docs` (orjson, batches of 1,000, WAL) and reading them back.

    The same raw pipeline as `bench.bench_store`, as one figure: count / (insert + read time).
    """
    insert_rate, read_rate = raw_insert_and_read(directory, docs)
    return 1 / (1 / insert_rate + 1 / read_rate)


# -- the passive peer process ----------------------------------------------------------------------


class PeerProcess:
    """`bench.peer_server` in a subprocess, driven over its stdin/stdout."""

    def __init__(self, directory: Path, name: str = "server") -> None:
        self.directory = directory
        self.name = name
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0

    async def start(self) -> None:
        root = _ROOT
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
        }
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.peer_server",
            "--db",
            str(self.directory),
            "--name",
            self.name,
            "--port",
            "0",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=root,
            env=env,
        )
        hello = await self._answer()
        self.port = int(hello["port"])

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/{self.name}"

    async def _answer(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), PEER_TIMEOUT)
        if not line:
            code = await asyncio.wait_for(self.proc.wait(), PEER_TIMEOUT)
            raise RuntimeError(f"peer server exited with status {code}")
        answer: dict[str, Any] = orjson.loads(line)
        if "error" in answer:
            raise RuntimeError(f"peer server: {answer['error']}")
        return answer

    async def command(self, line: str) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()
        return await self._answer()

    async def stop(self) -> None:
        """Ask the peer to quit; kill it if it does not (always safe to call)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            if proc.returncode is None and proc.stdin is not None:
                with contextlib.suppress(Exception):
                    proc.stdin.write(b"quit\n")
                    await proc.stdin.drain()
                    proc.stdin.close()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 10)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


# -- one replication -------------------------------------------------------------------------------


@dataclass
class Direction:
    """What one timed replication measured."""

    seconds: float
    docs: int
    lag: dict[str, float] = field(default_factory=dict)
    #: CPU seconds (all threads) used meanwhile by the active and the passive process.
    active_cpu: float = 0.0
    passive_cpu: float = 0.0

    def cpu_note(self) -> str:
        per_doc = 1e6 / self.docs
        return (
            f"CPU per doc: active {self.active_cpu * per_doc:.0f} us, "
            f"passive {self.passive_cpu * per_doc:.0f} us"
        )

    @property
    def rate(self) -> float:
        return self.docs / self.seconds


def _populate(db: Any, docs: Docs) -> None:
    from engine.store import MutableDocument

    coll = db.default_collection()
    for i in range(0, len(docs), BATCH):
        with db.in_batch():
            for doc_id, body in docs[i : i + BATCH]:
                coll.save(MutableDocument(doc_id, body))


async def _replicate(db: Any, url: str, push: bool, expected: int) -> float:
    """Seconds from start() to STOPPED; checks the replicator reached completed == total."""
    from engine.replication import (
        ActivityLevel,
        Replicator,
        ReplicatorConfiguration,
        ReplicatorType,
        URLEndpoint,
    )

    cfg = ReplicatorConfiguration(
        URLEndpoint(url),
        [db.default_collection()],
        replicator_type=ReplicatorType.PUSH if push else ReplicatorType.PULL,
        max_attempts=1,  # a retry would distort the timing: fail at once instead
    )
    replicator = Replicator(cfg)
    started = time.perf_counter()
    replicator.start()
    status = await replicator.wait_stopped(REPLICATION_TIMEOUT)
    seconds = time.perf_counter() - started
    direction = "push" if push else "pull"
    if status.activity is not ActivityLevel.STOPPED or status.error is not None:
        raise RuntimeError(f"{direction} failed: {status}")
    done = status.progress
    if done.completed != done.total or done.total != expected:
        raise RuntimeError(
            f"{direction} stopped at {done.completed}/{done.total}, expected {expected}"
        )
    return seconds


async def replicate_both(
    tmp: Path, docs: Docs, between: Any = None, profile_dir: Path | None = None
) -> tuple[Direction, Direction]:
    """Push `docs` to a fresh peer process, call `between()`, pull them into a fresh DB."""
    from engine.store import Database

    count = len(docs)
    (tmp / "peer").mkdir()
    pusher = Database("pusher", tmp / "pusher")
    puller = Database("puller", tmp / "puller")
    peer = PeerProcess(tmp / "peer")
    try:
        await pusher.run(_populate, pusher, docs)
        assert pusher.default_collection().count == count
        await peer.start()

        # push: the peer process receives
        await peer.command("lag-start")
        push = await _timed(pusher, peer, True, count, profile_dir)
        push.lag = await peer.command("lag-stop")
        received = (await peer.command("count"))["count"]
        if received != count:
            raise RuntimeError(f"the peer holds {received} documents after the push, not {count}")

        if between is not None:
            await asyncio.get_running_loop().run_in_executor(None, between)

        # pull: this process receives
        lag = LoopLag()
        lag.start()
        pull = await _timed(puller, peer, False, count, profile_dir)
        pull.lag = await lag.stop()
        pulled = await puller.run(lambda: puller.default_collection().count)
        if pulled != count:
            raise RuntimeError(f"the puller holds {pulled} documents after the pull, not {count}")
    finally:
        await peer.stop()
        pusher.close()
        puller.close()
    return push, pull


async def _timed(
    db: Any, peer: PeerProcess, push: bool, count: int, profile_dir: Path | None
) -> Direction:
    """`_replicate` and the CPU both processes used; cProfiles both into `profile_dir`."""
    label = "push" if push else "pull"
    if profile_dir is not None:
        await peer.command("profile-start")
    passive_cpu = (await peer.command("cpu"))["cpu"]
    active_cpu = time.process_time()
    try:
        with _profiling(profile_dir, f"{label}-active"):
            seconds = await _replicate(db, peer.url, push, count)
        active_cpu = time.process_time() - active_cpu
        passive_cpu = (await peer.command("cpu"))["cpu"] - passive_cpu
    finally:
        if profile_dir is not None:
            await peer.command(f"profile-stop {profile_dir / f'{label}-passive.pstats'}")
    return Direction(seconds, count, active_cpu=active_cpu, passive_cpu=passive_cpu)


@contextlib.contextmanager
def _profiling(directory: Path | None, name: str) -> Any:
    if directory is None:
        yield
        return
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()
        profiler.dump_stats(directory / f"{name}.pstats")


# -- the benchmark ---------------------------------------------------------------------------------


def measure(count: int, profile_dir: Path | None = None, rounds: int = 1) -> list[Result]:
    docs = list(make_docs(count))
    # This process is the receiver of the pull: keep the benchmark's own millions of
    # objects (the documents) out of the collector's full scans, which otherwise stall
    # the event loop for 50-100 ms each at 100,000 documents (a real app holds no copy).
    gc.collect()
    gc.freeze()
    try:
        return _measure(docs, profile_dir, rounds)
    finally:
        gc.unfreeze()


@dataclass
class Round:
    """One push and pull, and the raw pipeline measured before, between and after them."""

    push: Direction
    pull: Direction
    baselines: list[float]

    def direction(self, label: str) -> tuple[Direction, float]:
        """("push" or "pull") what it measured and its baseline: the raw runs around it."""
        if label == "push":
            return self.push, (self.baselines[0] + self.baselines[1]) / 2
        return self.pull, (self.baselines[1] + self.baselines[2]) / 2

    def ratio(self, label: str) -> float:
        d, base = self.direction(label)
        return d.rate / base


def _round(docs: Docs, profile_dir: Path | None) -> Round:
    baselines: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-replication-") as name:
        tmp = Path(name)

        def baseline() -> None:
            directory = Path(tempfile.mkdtemp(dir=tmp, prefix="raw-"))
            baselines.append(raw_pipeline(directory, docs))

        baseline()
        push, pull = asyncio.run(replicate_both(tmp, docs, baseline, profile_dir))
        baseline()
    return Round(push, pull, baselines)


def _measure(docs: Docs, profile_dir: Path | None, rounds: int) -> list[Result]:
    """Each direction's figures are those of the round with its median ratio (this host's
    speed drifts by 20% within a minute: one round's ratio is noisy); loop lag is the worst
    of all rounds."""
    count = len(docs)
    done = [_round(docs, profile_dir) for _ in range(rounds)]
    base_name = "raw sqlite3+orjson insert+read (docs/s)"
    results = []
    for label, receiver in (("push", "peer process"), ("pull", "pulling process")):
        chosen = median_by(done, lambda r, label=label: r.ratio(label))
        d, base = chosen.direction(label)
        raw = ", ".join(f"{b:,.0f}" for b in chosen.baselines)
        ratios = ", ".join(f"{r.ratio(label):.3f}" for r in done)
        note = (
            f"{count} docs of ~1 KB, {d.seconds:.2f} s start->stopped; {d.cpu_note()}; "
            f"baseline mean of raw runs around it ({raw} docs/s); "
            f"median of {rounds} rounds (ratios {ratios})"
        )
        d_lag = max((r.direction(label)[0] for r in done), key=lambda d: d.lag["max_ms"])
        lag_note = (
            f"receiver ({receiver}) loop lag, worst of {rounds} rounds: "
            f"{int(d_lag.lag['samples'])} samples every 10 ms, "
            f"p50 {d_lag.lag['p50_ms']:.2f} ms; of the worst one, "
            f"{d_lag.lag.get('max_busy_ms', 0.0):.0f} ms at most ran on the loop's thread"
        )
        cpu = (d.active_cpu + d.passive_cpu) * 1e6 / d.docs
        results += [
            Result(
                f"replication.{label}",
                d.rate,
                "docs/s",
                base,
                base_name,
                goal=GOAL_RATIO,
                note=note,
            ),
            Result(
                f"replication.{label}.cpu_per_doc",
                cpu,
                "us",
                lower_is_better=True,
                note=f"CPU of both processes (all threads) per document, steadier than docs/s "
                f"on a shared machine; {d.cpu_note()}",
            ),
            Result(
                f"replication.{label}.loop_lag_max",
                d_lag.lag["max_ms"],
                "ms",
                goal=GOAL_LAG_MS,
                lower_is_better=True,
                note=lag_note,
            ),
            Result(
                f"replication.{label}.loop_lag_p99",
                d_lag.lag["p99_ms"],
                "ms",
                lower_is_better=True,
                note=lag_note,
            ),
        ]
    return results


#: Rounds of the full benchmark (about 25 s each at 100,000 documents): the median ratio.
ROUNDS = 3


def run(quick: bool) -> list[Result]:
    return measure(5_000, rounds=1) if quick else measure(100_000, rounds=ROUNDS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_replication", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="5,000 documents instead of 100,000")
    parser.add_argument("--count", type=int, help="number of documents")
    parser.add_argument("--profile", type=Path, help="write cProfile pstats of both sides here")
    parser.add_argument("--rounds", type=int, default=1, help="rounds (the median ratio counts)")
    args = parser.parse_args(argv)
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    count = args.count or (5_000 if args.quick else 100_000)
    results = measure(count, args.profile, args.rounds)
    print_table(results)
    for result in results:
        print(f"{result.name}: {result.note}")
    return 0


__all__ = ["lag_summary", "measure", "raw_pipeline", "run"]

if __name__ == "__main__":
    sys.exit(main())
