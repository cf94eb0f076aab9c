"""Helpers of the fault scenarios: sizes, snapshots with blobs, status timelines, backoff."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import secrets
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from engine.replication import ActivityLevel, Replicator, ReplicatorStatus
from engine.replication.backoff import retry_delay
from engine.replication.blobs import blob_digests
from engine.store import Blob, Collection, Database, MutableDocument
from engine.store.blob import digest_of

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
#: The heartbeat of the scenario about heartbeats (a silent peer must be noticed quickly).
HEARTBEAT = 0.5
#: The heartbeat elsewhere: throttled or stalled links delay pongs by seconds, and those
#: scenarios detect failures through resets and closed sockets, not through pings.
QUIET_HEARTBEAT = 30.0
#: How late a retry may start compared with its backoff delay (the loop may be busy).
LATE_TOLERANCE = 0.75
EARLY_TOLERANCE = 0.05


@dataclass(frozen=True)
class Sizes:
    """How big the scenarios are: small in `make test`, large with --soak."""

    soak: bool
    big_docs: int  # scenario 1 (the issue says 10,000)
    docs: int  # the other scenarios
    cuts: int
    edit_seconds: float
    faults: int  # cuts + stalls in the continuous scenario


def sizes(soak: bool) -> Sizes:
    if soak:
        return Sizes(True, big_docs=100_000, docs=10_000, cuts=25, edit_seconds=60, faults=40)
    return Sizes(False, big_docs=10_000, docs=1_000, cuts=5, edit_seconds=3, faults=6)


# -- documents --------------------------------------------------------------------------------

BLOB_EVERY = 500


def blob_content(doc_id: str) -> bytes:
    return hashlib.sha256(doc_id.encode()).digest() * 64  # 2 kB, unique per document


def fill(coll: Collection, count: int, prefix: str, pad: int = 60) -> dict[str, str]:
    """`count` new documents (every BLOB_EVERY-th with a blob); returns {id: revID}."""
    db = coll.database
    with db.in_batch():
        for i in range(count):
            doc_id = f"{prefix}-{i:06d}"
            # random padding: BLIP compresses bodies, and the throttled scenarios need bytes
            body: dict[str, Any] = {"n": i, "from": prefix, "pad": secrets.token_hex(pad // 2)}
            if i % BLOB_EVERY == 0:
                body["att"] = Blob("application/octet-stream", blob_content(doc_id))
            coll.save(MutableDocument(doc_id, body))
    return {d.id: d.rev_id or "" for d in coll.iter_documents() if d.id.startswith(prefix + "-")}


Snapshot = dict[str, tuple[str | None, bool, bytes, tuple[str, ...]]]


def snapshot(coll: Collection) -> Snapshot:
    """{id: (current revID, deleted, canonical body, conflicting revIDs)}, tombstones too."""
    return {
        d.id: (
            d.rev_id,
            d.deleted,
            orjson.dumps(d.properties, option=orjson.OPT_SORT_KEYS),
            tuple(sorted(d.conflicts)),
        )
        for d in coll.iter_documents(include_deleted=True)
    }


def blob_problems(coll: Collection) -> list[str]:
    """Blobs referenced by current revisions that are missing or do not match their digest."""
    store = coll.database.blob_store
    problems = []
    for doc in coll.iter_documents():
        for digest in set(blob_digests(doc.properties)):
            if not store.has(digest):
                problems.append(f"{doc.id}: blob {digest} missing")
            elif digest_of(store.read(digest)) != digest:
                problems.append(f"{doc.id}: blob {digest} has the wrong content")
    return problems


def compare(a: Collection, b: Collection) -> list[str]:
    """Why the two collections differ (empty: identical documents, revIDs, bodies, blobs)."""
    sa, sb = snapshot(a), snapshot(b)
    problems: list[str] = []
    only_a, only_b = sorted(sa.keys() - sb.keys()), sorted(sb.keys() - sa.keys())
    if only_a:
        problems.append(f"{len(only_a)} documents only in {a.database.name}: {only_a[:5]}")
    if only_b:
        problems.append(f"{len(only_b)} documents only in {b.database.name}: {only_b[:5]}")
    differ = sorted(k for k in sa.keys() & sb.keys() if sa[k] != sb[k])
    if differ:
        k = differ[0]
        problems.append(f"{len(differ)} documents differ, e.g. {k}: {sa[k]!r} != {sb[k]!r}")
    for coll in (a, b):
        problems += blob_problems(coll)
        conflicted = [k for k, v in snapshot(coll).items() if v[3]]
        if conflicted:
            problems.append(f"{coll.database.name}: unresolved conflicts in {conflicted[:5]}")
        integrity = coll.database.integrity_check()
        if integrity != "ok":
            problems.append(f"{coll.database.name}: integrity_check says {integrity}")
    return problems


def expect_revisions(coll: Collection, expected: dict[str, str]) -> list[str]:
    """Every expected document present exactly once at exactly its expected current rev."""
    live = {d.id: d.rev_id for d in coll.iter_documents(include_deleted=True)}
    missing = sorted(expected.keys() - live.keys())
    wrong = sorted(k for k in expected.keys() & live.keys() if live[k] != expected[k])
    problems = []
    if missing:
        problems.append(f"{coll.database.name}: {len(missing)} documents lost: {missing[:5]}")
    if wrong:
        k = wrong[0]
        problems.append(
            f"{coll.database.name}: {len(wrong)} documents at an unexpected revision, "
            f"e.g. {k}: {live[k]} instead of {expected[k]}"
        )
    return problems


def limit_pages(db: Database, pages: int | None) -> None:
    """Test hook: cap the SQLite file at `pages` pages beyond its current size (None: lift).

    This is how the scenarios fill "the disk" portably (no tmpfs, no root): SQLite then
    fails writes with SQLITE_FULL exactly as on a full file system.
    """
    with db._lock:
        if pages is None:
            db._conn.execute("PRAGMA max_page_count = 1073741823")
        else:
            (count,) = db._conn.execute("PRAGMA page_count").fetchone()
            db._conn.execute(f"PRAGMA max_page_count = {count + pages}")


# -- status timelines and the backoff schedule --------------------------------------------


@dataclass
class Timeline:
    """Every status a replicator reported, with the monotonic time it was reported at."""

    events: list[tuple[float, ReplicatorStatus]] = field(default_factory=list)

    def __call__(self, status: ReplicatorStatus) -> None:
        self.events.append((time.monotonic(), status))

    def attach(self, replicator: Replicator) -> Timeline:
        replicator.add_change_listener(self)
        return self

    def levels(self) -> list[ActivityLevel]:
        out: list[ActivityLevel] = []
        for _, status in self.events:
            if not out or out[-1] is not status.activity:
                out.append(status.activity)
        return out

    def attempts(self) -> Iterator[Attempt]:
        """The connection attempts: each from CONNECTING to the next OFFLINE or STOPPED."""
        current: Attempt | None = None
        for t, status in self.events:
            level = status.activity
            if level is ActivityLevel.CONNECTING and (current is None or current.ended):
                current = Attempt(t)
            elif current is None or current.ended:
                continue
            elif level in (ActivityLevel.BUSY, ActivityLevel.IDLE):
                current.connected = True
            elif level in (ActivityLevel.OFFLINE, ActivityLevel.STOPPED):
                current.end, current.outcome, current.error = t, level, status.error
                yield current

    def count(self, level: ActivityLevel) -> int:
        return self.levels().count(level)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            await asyncio.sleep(0.02)


@dataclass
class Attempt:
    start: float
    connected: bool = False
    end: float | None = None
    outcome: ActivityLevel | None = None
    error: Any = None

    @property
    def ended(self) -> bool:
        return self.end is not None


def backoff_problems(timeline: Timeline, cap: float) -> list[str]:
    """Check every retry gap (OFFLINE -> next CONNECTING) against `retry_delay`.

    The expected schedule: the n-th consecutive attempt that failed without getting
    connected waits retry_delay(n, cap); an attempt that did connect (reached BUSY or
    IDLE) restarts the count, so its failure waits retry_delay(1, cap). Every OFFLINE must
    carry a transient error.
    """
    attempts = list(timeline.attempts())
    problems: list[str] = []
    n = 0
    for index, (attempt, following) in enumerate(itertools.pairwise(attempts)):
        if attempt.outcome is not ActivityLevel.OFFLINE:
            continue
        if attempt.error is None or not getattr(attempt.error, "transient", False):
            problems.append(f"attempt {index + 1} went OFFLINE without a transient error")
        n = 1 if attempt.connected else n + 1
        expected = retry_delay(n, cap)
        assert attempt.end is not None
        gap = following.start - attempt.end
        if not expected - EARLY_TOLERANCE <= gap <= expected + LATE_TOLERANCE:
            problems.append(
                f"retry {index + 1} (consecutive failure #{n}, "
                f"{'after' if attempt.connected else 'without'} a connection) started "
                f"{gap:.2f} s after going OFFLINE; retry_delay({n}, {cap}) = {expected}"
            )
    return problems


def schedule(timeline: Timeline) -> str:
    """The attempts and gaps, for failure messages."""
    lines = []
    previous: Attempt | None = None
    for attempt in timeline.attempts():
        gap = (
            ""
            if previous is None or previous.end is None
            else (f" after {attempt.start - previous.end:.2f} s")
        )
        outcome = attempt.outcome.name if attempt.outcome is not None else "?"
        lines.append(
            f"attempt{gap}: {'connected' if attempt.connected else 'not connected'}, "
            f"{outcome} {attempt.error!s:.80}"
        )
        previous = attempt
    return "\n".join(lines)


def soak_from_env() -> bool:
    return os.environ.get("PEERBASE_SOAK", "") not in ("", "0")


# -- child processes ----------------------------------------------------------------------


class Child:
    """A child process printing JSON lines, collected as they come (stderr to a log file)."""

    def __init__(self, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.proc = proc
        self.log = log
        self.lines: list[dict[str, Any]] = []
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def start(cls, argv: list[str], log: Path) -> Child:
        with log.open("ab") as stderr:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                cwd=ROOT,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
            )
        return cls(proc, log)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            try:
                self.lines.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                self.lines.append({"event": "text", "text": line.decode(errors="replace")})

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line.get("event") == name]

    async def wait_line(self, event: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while not self.events(event):
            if self.proc.returncode is not None and self._reader.done():
                raise AssertionError(f"{self.describe()} exited before printing {event!r}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.describe()} printed no {event!r} in {timeout} s")
            await asyncio.sleep(0.02)
        return self.events(event)[0]

    async def kill(self) -> None:
        """SIGKILL: no cleanup of any kind in the child."""
        os.kill(self.proc.pid, signal.SIGKILL)
        await self.wait(10)

    async def terminate(self, timeout: float = 10) -> int:
        if self.proc.returncode is None:
            self.proc.terminate()
        return await self.wait(timeout)

    async def wait(self, timeout: float) -> int:
        try:
            code = await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise AssertionError(f"{self.describe()} still running after {timeout} s") from None
        await self._reader
        return code

    def describe(self) -> str:
        tail = self.log.read_text(errors="replace")[-1500:] if self.log.exists() else ""
        return f"child {self.proc.pid} (stderr tail: {tail!r})"


def listen_argv(db_dir: Path, port: int) -> list[str]:
    return [
        PYTHON, "-m", "engine.cli.main", "listen", "--db", str(db_dir), "--port", str(port),
        "--no-tls", "--json", "--interface", "127.0.0.1",
    ]  # fmt: skip
