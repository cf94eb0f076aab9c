"""Store throughput vs raw sqlite3: insert 100k ~1 KB docs in batches of 1,000, read back."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

import orjson

from bench.common import Result, Timer, make_docs, median_by
from engine.store import Database, MutableDocument

BATCH = 1000


def _raw(directory: Path, docs: list[tuple[str, dict[str, object]]]) -> tuple[float, float]:
    conn = sqlite3.connect(directory / "raw.sqlite3", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE docs (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,"
        " rev TEXT NOT NULL, body BLOB NOT NULL)"
    )
    with Timer() as write:
        seq = 0
        for i in range(0, len(docs), BATCH):
            conn.execute("BEGIN")
            rows = []
            for doc_id, body in docs[i : i + BATCH]:
                seq += 1
                rows.append((seq, doc_id, "1-x", orjson.dumps(body)))
            conn.executemany("INSERT INTO docs VALUES (?, ?, ?, ?)", rows)
            conn.execute("COMMIT")
    with Timer() as read:
        n = 0
        for _seq, _id, _rev, body in conn.execute(
            "SELECT seq, id, rev, body FROM docs ORDER BY seq"
        ):
            orjson.loads(body)
            n += 1
    assert n == len(docs)
    conn.close()
    return len(docs) / write.seconds, len(docs) / read.seconds


def _store(directory: Path, docs: list[tuple[str, dict[str, object]]]) -> tuple[float, float]:
    with Database("bench", directory) as db:
        coll = db.default_collection()
        with Timer() as write:
            for i in range(0, len(docs), BATCH):
                with db.in_batch():
                    for doc_id, body in docs[i : i + BATCH]:
                        coll.save(MutableDocument(doc_id, body))
        with Timer() as read:
            n = 0
            for doc in coll.iter_documents():
                doc.properties  # noqa: B018 - decode the body, as the raw baseline does
                n += 1
        assert n == len(docs)
    return len(docs) / write.seconds, len(docs) / read.seconds


def run(quick: bool) -> list[Result]:
    count = 10_000 if quick else 100_000
    rounds = 5  # the median ratio: one round of the fast raw read varies by +-25% here
    docs = list(make_docs(count))
    measured: list[tuple[float, float, float, float]] = []
    for _ in range(rounds):  # alternate so drift in machine speed hits both sides alike
        with tempfile.TemporaryDirectory() as tmp:
            raw_w, raw_r = _raw(Path(tmp), docs)
        with tempfile.TemporaryDirectory() as tmp:
            store_w, store_r = _store(Path(tmp), docs)
        measured.append((store_w, raw_w, store_r, raw_r))
    write = median_by(measured, lambda m: m[0] / m[1])
    read = median_by(measured, lambda m: m[2] / m[3])
    note = f"{count} docs, batches of {BATCH}, median ratio of {rounds} alternating rounds"
    return [
        Result(
            "store.insert", write[0], "docs/s", write[1], "raw sqlite3 insert", goal=0.5, note=note
        ),
        Result(
            "store.read_seq", read[2], "docs/s", read[3], "raw sqlite3 read", goal=0.7, note=note
        ),
    ]
