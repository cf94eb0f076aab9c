"""Peer baseline: Peerbase replication vs PouchDB replication of the same documents.

Both sides replicate the same N ~1 KB documents (`bench.common.make_docs`) in the same run,
with the same two-process shape, push then pull, on 127.0.0.1:

- Peerbase: a listener process (`bench.procs listen`, ws://, no TLS) with an empty
  database and a replicator process (`bench.procs replicate`) that pushes N documents to
  it (one-shot PUSH from a database filled beforehand); then a fresh replicator process
  pulls them from a fresh listener process into an empty database (one-shot PULL).
- PouchDB 9: an express-pouchdb server process (`bench/pouchdb/server.js`, HTTP) with
  LevelDB storage; a Node client process (`bench/pouchdb/client.js`) loads the same
  documents into a local LevelDB PouchDB (not timed), pushes them (`replicate.to`), then
  pulls them into a fresh local database (`replicate.from`), default replication options.

Each direction is timed from the start of the replication to its end and checked (document
counts on both ends). The figure is Peerbase's docs/s over PouchDB's, per direction; the
goal is 5x. A second, steadier figure per direction is the CPU time both processes spent
in it (all threads; /proc for Peerbase's processes and the express-pouchdb server, Node's
`process.cpuUsage` for the PouchDB client), per document: goal at most 1/5 of PouchDB's.
Order: Peerbase push, PouchDB push and pull, Peerbase pull, so each pair is measured in
opposite orders and a steady drift of the machine's speed favours neither side.

The npm packages (pinned in `bench/pouchdb/package.json` and its lock file) are installed
into `bench/pouchdb/node_modules` on the first run; later runs skip the install while
package.json and the lock file are unchanged.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench.common import Result, print_table
from bench.procs import (
    REPLICATION_TIMEOUT,
    ProcessRun,
    cpu_seconds,
    docs_file,
    populate_path,
    replicate_in_processes,
)

GOAL_RATIO = 5.0
QUICK_COUNT = 2_000
#: 100,000 docs would cost PouchDB ~80 s and Peerbase ~70 s more: the whole bench must stay
#: under 10 minutes, so the full run compares 20,000 (the rates are per document and flat
#: past a few thousand on both sides; see the report).
FULL_COUNT = 20_000
POUCHDB_DIR = Path(__file__).resolve().parent / "pouchdb"
INSTALL_TIMEOUT = 600.0
SERVER_TIMEOUT = 30.0


# -- npm -----------------------------------------------------------------------------------------


def _manifest_digest() -> str:
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        path = POUCHDB_DIR / name
        if path.exists():
            digest.update(name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def ensure_installed() -> None:
    """`npm install` the pinned packages into bench/pouchdb/node_modules unless already there."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise RuntimeError(
            "bench_pouchdb needs Node.js (20+) and npm on PATH for the PouchDB baseline "
            f"(found node={node}, npm={npm}); install them, e.g. `apt-get install nodejs npm`"
        )
    stamp = POUCHDB_DIR / ".installed"
    wanted = _manifest_digest()
    modules = POUCHDB_DIR / "node_modules"

    def installed() -> bool:
        return (
            stamp.exists()
            and stamp.read_text().strip() == wanted
            and all((modules / p / "package.json").exists() for p in ("pouchdb", "express-pouchdb"))
        )

    if installed():
        return
    with open(POUCHDB_DIR / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another bench run may be installing right now
        if installed():
            return
        print("# bench_pouchdb: npm install (first run) ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        proc = subprocess.run(
            [npm, "install", "--prefix", str(POUCHDB_DIR), "--no-audit", "--no-fund"],
            cwd=POUCHDB_DIR,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"npm install in {POUCHDB_DIR} failed ({proc.returncode}):\n"
                f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
            )
        stamp.write_text(wanted + "\n")
        print(
            f"# bench_pouchdb: npm install took {time.perf_counter() - started:.0f} s",
            file=sys.stderr,
            flush=True,
        )


# -- PouchDB ---------------------------------------------------------------------------------------


async def _client_report(client: asyncio.subprocess.Process, server_pid: int) -> dict[str, Any]:
    """The client's final JSON line, plus the server's CPU seconds in each replication
    (/proc sampled when the client announces the start and the end of each)."""
    assert client.stdout is not None
    report: dict[str, Any] = {}
    started: dict[str, float] = {}
    while line := await client.stdout.readline():
        data: dict[str, Any] = orjson.loads(line)
        name = str(data.get("event", ""))
        kind, _, edge = name.partition("-")
        if edge == "start":
            started[kind] = cpu_seconds(server_pid)
        elif edge == "end":
            report[f"server_{kind}_cpu_s"] = cpu_seconds(server_pid) - started[kind]
        else:
            report.update(data)
    await client.wait()
    if client.returncode != 0 or "error" in report:
        raise RuntimeError(f"PouchDB client failed ({client.returncode}): {report}")
    return report


async def _pouchdb(tmp: Path, docs_path: Path, count: int) -> dict[str, Any]:
    """Run the express-pouchdb server and the PouchDB client; the client's JSON report."""
    (tmp / "pouch-server").mkdir()
    (tmp / "pouch-client").mkdir()
    server = await asyncio.create_subprocess_exec(
        "node",
        str(POUCHDB_DIR / "server.js"),
        str(tmp / "pouch-server"),
        cwd=tmp,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    client: asyncio.subprocess.Process | None = None
    try:
        assert server.stdout is not None
        line = await asyncio.wait_for(server.stdout.readline(), SERVER_TIMEOUT)
        if not line:
            raise RuntimeError(f"express-pouchdb server exited ({await server.wait()})")
        port = orjson.loads(line)["port"]
        client = await asyncio.create_subprocess_exec(
            "node",
            str(POUCHDB_DIR / "client.js"),
            str(docs_path),
            str(tmp / "pouch-client"),
            f"http://127.0.0.1:{port}/bench",
            cwd=tmp,
            stdout=asyncio.subprocess.PIPE,
        )
        report = await asyncio.wait_for(_client_report(client, server.pid), REPLICATION_TIMEOUT)
    finally:
        for proc in (client, server):
            if proc is None or proc.returncode is not None:
                continue
            if proc.stdin is not None:
                with contextlib.suppress(Exception):
                    proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                proc.kill()
                await proc.wait()
    for key in ("loaded", "pushed", "remote_count", "pulled", "target_count"):
        if report.get(key) != count:
            raise RuntimeError(f"PouchDB {key} = {report.get(key)}, expected {count}: {report}")
    return report


# -- Peerbase --------------------------------------------------------------------------------------


async def peerbase(tmp: Path, kind: str, count: int) -> ProcessRun:
    """Seconds of a one-shot `kind` of `count` docs between a replicator process and a new
    listener process: push from a filled database, pull into an empty one."""
    database = tmp / ("source" if kind == "push" else "target")
    if kind == "push":
        populate_path(database, count)
    return await replicate_in_processes(tmp / "peer", database, kind, count)


# -- the benchmark ---------------------------------------------------------------------------------


def measure(count: int) -> list[Result]:
    ensure_installed()
    with tempfile.TemporaryDirectory(prefix="bench-pouchdb-") as name:
        tmp = Path(name)
        path = docs_file(tmp, count)
        # Peerbase push, PouchDB push and pull, Peerbase pull: each pair is measured in
        # opposite orders, so a steady drift of the machine's speed favours neither side.
        push = asyncio.run(peerbase(tmp, "push", count))
        pouch = asyncio.run(_pouchdb(tmp, path, count))
        pull = asyncio.run(peerbase(tmp, "pull", count))
    results = []
    for label, ours in (("push", push), ("pull", pull)):
        theirs = pouch[f"{label}_s"]
        ours_cpu = (ours.active_cpu_s + ours.passive_cpu_s) / count * 1e6
        theirs_cpu = (pouch[f"{label}_cpu_s"] + pouch[f"server_{label}_cpu_s"]) / count * 1e6
        note = (
            f"{count:,} docs of ~1 KB, one-shot {label}, two processes on 127.0.0.1: "
            f"Peerbase {ours.seconds:.2f} s (ws://, listener process), PouchDB {theirs:.2f} s "
            f"(HTTP, LevelDB both ends); CPU per doc, active + passive: Peerbase "
            f"{ours.active_cpu_s / count * 1e6:.0f} + {ours.passive_cpu_s / count * 1e6:.0f} us, "
            f"PouchDB {pouch[f'{label}_cpu_s'] / count * 1e6:.0f} + "
            f"{pouch[f'server_{label}_cpu_s'] / count * 1e6:.0f} us; order: Peerbase push, "
            f"PouchDB push and pull, Peerbase pull"
        )
        results += [
            Result(
                f"vs_pouchdb.{label}",
                count / ours.seconds,
                "docs/s",
                count / theirs,
                f"PouchDB 9 -> express-pouchdb {label} over HTTP (docs/s)",
                goal=GOAL_RATIO,
                note=note,
            ),
            Result(
                f"vs_pouchdb.{label}.cpu_per_doc",
                ours_cpu,
                "us",
                theirs_cpu,
                f"PouchDB {label}: CPU of client + server per doc (us)",
                goal=1 / GOAL_RATIO,
                lower_is_better=True,
                note="CPU time of both processes (all threads) per document, steadier than "
                "docs/s on a shared machine; " + note,
            ),
        ]
    return results


def run(quick: bool) -> list[Result]:
    return measure(QUICK_COUNT if quick else FULL_COUNT)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_pouchdb", description=__doc__)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_COUNT:,} documents")
    parser.add_argument("--count", type=int, help="number of documents")
    args = parser.parse_args(argv)
    print_table(measure(args.count or (QUICK_COUNT if args.quick else FULL_COUNT)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
