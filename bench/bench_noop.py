"""A no-op sync: one-shot push-and-pull of 100,000 documents both sides already hold.

A (this process) holds N ~1 KB documents; B is a listener process (`bench.procs listen`)
with an empty database. A first one-shot PUSH_AND_PULL copies everything to B (timed for
information). The figure is the second one-shot PUSH_AND_PULL, which has nothing to
transfer, timed from `start()` to STOPPED: connect, the ws:// handshake, both checkpoints,
both change feeds, checkpoint saves, close. The goal is under 1 s, i.e. the cost must not
grow with the number of documents already in sync.

That second sync is not the cheapest one: during the first sync the pull side's feed of B
started when B was still empty, so B's N new sequences (the documents A pushed) lie past
the pull checkpoint and are offered back to A once, found present, and skipped. A third
and later sync start from caught-up checkpoints on both sides: `noop_sync.again` is the
median of 3 of those. For information the full run's note also gives one sync with
`reset_checkpoint=True` (all N documents offered both ways and found present).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Result, print_table
from bench.procs import Listener, cached_docs, populate, replicate_once

GOAL_SECONDS = 1.0
RUNS = 3


async def measure_async(count: int, reset_run: bool) -> dict[str, object]:
    from engine.store import Database

    docs = cached_docs(count)
    with tempfile.TemporaryDirectory(prefix="bench-noop-") as name:
        tmp = Path(name)
        db = Database("a", tmp / "a")
        listener = Listener(tmp / "b")
        try:
            await db.run(populate, db, docs)
            await listener.start()
            first, _ = await replicate_once(db, listener.url, "pushpull")
            held = await listener.count()
            if held != count:
                raise RuntimeError(f"B holds {held} documents after the first sync, not {count}")
            noops = []
            for _ in range(1 + RUNS):
                seconds, status = await replicate_once(db, listener.url, "pushpull")
                if status.progress.total != 0:
                    raise RuntimeError(f"the no-op sync had work to do: {status}")
                noops.append(seconds)
            reset = None
            if reset_run:
                reset, _ = await replicate_once(db, listener.url, "pushpull", reset_checkpoint=True)
            local = await db.run(lambda: db.default_collection().count)
            if local != count or await listener.count() != count:
                raise RuntimeError("document counts changed during the no-op syncs")
        finally:
            await listener.stop()
            db.close()
    return {"first": first, "noops": noops, "reset": reset}


def measure(count: int, reset_run: bool = True) -> list[Result]:
    started = time.perf_counter()
    m = asyncio.run(measure_async(count, reset_run))
    elapsed = time.perf_counter() - started
    noops: list[float] = m["noops"]  # type: ignore[assignment]
    reset = m["reset"]
    note = (
        f"{count:,} docs in sync between this process and a listener process; one-shot "
        f"push-and-pull runs after a first sync of {m['first']:.1f} s: "
        f"{', '.join(f'{s:.3f}' for s in noops)} s"
    )
    if reset is not None:
        note += f"; without checkpoints (reset) {reset:.2f} s"
    note += f"; module {elapsed:.1f} s"
    return [
        Result(
            "noop_sync",
            noops[0],
            "s",
            goal=GOAL_SECONDS,
            lower_is_better=True,
            note="the second sync; " + note,
        ),
        Result(
            "noop_sync.again",
            statistics.median(noops[1:]),
            "s",
            goal=GOAL_SECONDS,
            lower_is_better=True,
            note=f"median of the 3rd to {RUNS + 2}th syncs; " + note,
        ),
    ]


def run(quick: bool) -> list[Result]:
    if quick:
        return measure(10_000, reset_run=False)
    return measure(100_000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_noop", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10,000 documents")
    parser.add_argument("--count", type=int, help="number of documents")
    args = parser.parse_args(argv)
    print_table(measure(args.count or (10_000 if args.quick else 100_000)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
