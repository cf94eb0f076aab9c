"""Peak resident memory of each side while replicating 10,000 and 100,000 documents.

Every side runs in its own process, so each figure is one side's own peak:

- the bench process fills the source database first (not measured: the documents it
  holds in memory would swamp the figure of a replicating process);
- the passive side is a listener process (`bench.procs listen`) serving an empty database;
- the active side is a process (`bench.procs replicate`) that opens the source database
  and runs one one-shot PUSH to the listener; then a second one, with an empty database,
  runs one one-shot PULL of everything back from a fresh listener process serving the
  database the push filled (a fresh process, so its figure is the pull's own and not the
  memory the push left allocated).

Peaks are VmHWM from /proc/<pid>/status: the active process reports its own at the end of
its replication; the parent reads the listener's once the replication has finished.

The same runs at two sizes (10k and 100k; 2k and 10k when quick) tell how memory grows
with the document count: the goals are under 200 MB at the larger size and at most 2x the
smaller size's peak for 10x the documents (linear growth would be 10x).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Result, print_table
from bench.procs import cached_docs, populate_path, replicate_in_processes

GOAL_MB = 200.0
GOAL_GROWTH = 2.0
SIDES = (("push", "active"), ("push", "passive"), ("pull", "active"), ("pull", "passive"))

#: (direction, side) -> {"hwm_mb", "idle_mb", "seconds"}
Figures = dict[tuple[str, str], dict[str, float]]


async def measure_size(tmp: Path, count: int) -> Figures:
    """Peaks of both sides, both directions, for `count` documents."""
    source, peer, target = (tmp / f"{label}-{count}" for label in ("src", "peer", "dst"))
    populate_path(source, count)
    figures: Figures = {}
    for kind, database in (("push", source), ("pull", target)):
        run = await replicate_in_processes(peer, database, kind, count)
        figures[kind, "active"] = {
            "hwm_mb": run.active_hwm_mb,
            "idle_mb": run.active_idle_mb,
            "seconds": run.seconds,
        }
        figures[kind, "passive"] = {
            "hwm_mb": run.passive_hwm_mb,
            "idle_mb": run.passive_idle_mb,
            "seconds": run.seconds,
        }
    return figures


def measure(small: int, large: int) -> list[Result]:
    by_size: dict[int, Figures] = {}
    cached_docs(large)  # generate once, largest first
    with tempfile.TemporaryDirectory(prefix="bench-rss-") as name:
        for count in (small, large):
            started = time.perf_counter()
            by_size[count] = asyncio.run(measure_size(Path(name), count))
            print(
                f"#   rss at {count:,} docs ({time.perf_counter() - started:.1f} s): "
                + ", ".join(
                    f"{d} {s} {f['hwm_mb']:.1f} MB" for (d, s), f in by_size[count].items()
                ),
                file=sys.stderr,
                flush=True,
            )
    results = []
    for direction, side in SIDES:
        lo, hi = by_size[small][direction, side], by_size[large][direction, side]
        where = "replicator process" if side == "active" else "listener process"
        note = (
            f"VmHWM of the {where} during a one-shot {direction}: {hi['hwm_mb']:.1f} MB at "
            f"{large:,} docs ({hi['seconds']:.1f} s), {lo['hwm_mb']:.1f} MB at {small:,} docs; "
            f"idle before {hi['idle_mb']:.1f} MB (growth above idle "
            f"{hi['hwm_mb'] - hi['idle_mb']:.1f} vs {lo['hwm_mb'] - lo['idle_mb']:.1f} MB)"
        )
        results += [
            Result(
                f"rss.{direction}.{side}",
                hi["hwm_mb"],
                "MB",
                goal=GOAL_MB,
                lower_is_better=True,
                note=note,
            ),
            Result(
                f"rss.{direction}.{side}.growth",
                hi["hwm_mb"],
                "MB",
                baseline=lo["hwm_mb"],
                baseline_name=f"peak RSS at {small:,} docs (MB)",
                goal=GOAL_GROWTH,
                lower_is_better=True,
                note=f"{large // small}x the docs: linear growth would be {large // small}x; "
                + note,
            ),
        ]
    return results


def run(quick: bool) -> list[Result]:
    return measure(2_000, 10_000) if quick else measure(10_000, 100_000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_rss", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2,000 and 10,000 documents")
    args = parser.parse_args(argv)
    print_table(run(args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
