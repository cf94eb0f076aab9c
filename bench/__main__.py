"""Run every benchmark, print one table, write bench/results/latest.json."""

from __future__ import annotations

import argparse
import importlib
import sys
import time

from bench.common import Result, print_table, write_json

#: Benchmark modules, each exposing ``run(quick: bool) -> list[Result]``.
MODULES = [
    "bench.bench_store",
    "bench.bench_blip",
    "bench.bench_replication",
    "bench.bench_tls",
    "bench.bench_latency",
    "bench.bench_rss",
    "bench.bench_noop",
    "bench.bench_pouchdb",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    parser.add_argument("--only", action="append", default=[], help="run only this module")
    args = parser.parse_args(argv)
    results: list[Result] = []
    for name in MODULES:
        if args.only and not any(o in name for o in args.only):
            continue
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        started = time.perf_counter()
        print(f"# {name} ...", file=sys.stderr, flush=True)
        results.extend(module.run(args.quick))
        print(f"# {name} took {time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)
    print_table(results)
    path = write_json(results)
    print(f"\nwritten to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
