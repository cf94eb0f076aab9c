"""wss:// vs ws:// replication: push then pull the same documents through a real listener.

Three peers, each a `bench.tls_peer` process behind `URLEndpointListener`: plain ws://,
wss:// with a self-signed identity (the anonymous kind), and wss:// with HTTP Basic
authentication. Each pair of rows compares wss with ws measured in the same run.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench.common import Result, make_docs, median_by
from bench.tls_peer import PASSWORD, USER

GOAL = 0.8
_ROOT = Path(__file__).resolve().parent.parent
Docs = list[tuple[str, dict[str, object]]]


async def _peer(directory: Path, mode: str) -> tuple[asyncio.subprocess.Process, int]:
    env = {**os.environ, "PYTHONPATH": str(_ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.tls_peer",
        "--db",
        str(directory),
        "--mode",
        mode,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=_ROOT,
        env=env,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    if not line:
        raise RuntimeError(f"tls_peer ({mode}) exited with status {await proc.wait()}")
    return proc, int(orjson.loads(line)["port"])


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.stdin is not None:
        proc.stdin.close()
    try:
        await asyncio.wait_for(proc.wait(), 10)
    except TimeoutError:
        proc.kill()
        await proc.wait()


async def _one(db: Any, url: str, push: bool, auth: bool, expected: int) -> float:
    from engine.replication import (
        BasicAuthenticator,
        Replicator,
        ReplicatorConfiguration,
        ReplicatorType,
        URLEndpoint,
    )

    cfg = ReplicatorConfiguration(
        URLEndpoint(url),
        [db.default_collection()],
        replicator_type=ReplicatorType.PUSH if push else ReplicatorType.PULL,
        accept_only_self_signed_server_certificate=url.startswith("wss:"),
        authenticator=BasicAuthenticator(USER, PASSWORD) if auth else None,
        max_attempts=1,
    )
    replicator = Replicator(cfg)
    started = time.perf_counter()
    replicator.start()
    status = await replicator.wait_stopped(900)
    seconds = time.perf_counter() - started
    if status.error is not None or status.progress.completed != expected:
        raise RuntimeError(f"{url} {'push' if push else 'pull'} failed: {status}")
    return expected / seconds


async def _mode(tmp: Path, docs: Docs, mode: str) -> tuple[float, float]:
    from bench.bench_replication import _populate
    from engine.store import Database

    base = tmp / mode
    (base / "peer").mkdir(parents=True)
    pusher = Database("pusher", base / "pusher")
    puller = Database("puller", base / "puller")
    proc, port = await _peer(base / "peer", mode)
    try:
        await pusher.run(_populate, pusher, docs)
        scheme = "ws" if mode == "ws" else "wss"
        url = f"{scheme}://127.0.0.1:{port}/bench"
        auth = mode == "wss-basic"
        push = await _one(pusher, url, True, auth, len(docs))
        pull = await _one(puller, url, False, auth, len(docs))
    finally:
        await _stop(proc)
        pusher.close()
        puller.close()
    return push, pull


ROUNDS = 3
MODES = ("ws", "wss", "wss-basic")


async def _measure(docs: Docs, count: int) -> list[dict[str, tuple[float, float]]]:
    """One {mode: (push, pull)} per round; modes alternate so drift hits them alike."""
    rounds = []
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as name:
        for _ in range(count):
            rates = {}
            for mode in MODES:
                rates[mode] = await _mode(Path(tempfile.mkdtemp(dir=name)), docs, mode)
            rounds.append(rates)
    return rounds


def run(quick: bool) -> list[Result]:
    count = 2_000 if quick else 20_000
    docs = list(make_docs(count))
    rounds = asyncio.run(_measure(docs, 1 if quick else ROUNDS))
    note = (
        f"{count} docs of ~1 KB through URLEndpointListener; the round with the median "
        f"wss/ws ratio of {len(rounds)} alternating rounds"
    )
    results = []
    for index, direction in enumerate(("push", "pull")):
        ws = median_by(rounds, lambda r, i=index: r["ws"][i])
        results.append(Result(f"tls.ws.{direction}", ws["ws"][index], "docs/s", note=note))
    for mode, label in (("wss", "anonymous TLS"), ("wss-basic", "TLS + Basic auth")):
        for index, direction in enumerate(("push", "pull")):
            chosen = median_by(rounds, lambda r, m=mode, i=index: r[m][i] / r["ws"][i])
            results.append(
                Result(
                    f"tls.{mode}.{direction}",
                    chosen[mode][index],
                    "docs/s",
                    chosen["ws"][index],
                    f"ws:// {direction}, same round",
                    goal=GOAL,
                    note=f"{label}; {note}",
                )
            )
    return results
