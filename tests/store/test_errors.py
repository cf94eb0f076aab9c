"""Each store error case: a precise error, and no stored data lost."""

from __future__ import annotations

import os
import resource
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engine.errors import (
    CorruptDatabaseError,
    DatabaseBusyError,
    DiskFullError,
    PeerbaseError,
)
from engine.store import Database, MutableDocument


def test_busy_database(tmp_path: Path) -> None:
    with Database("busy", tmp_path, busy_timeout=0.1) as db:
        coll = db.default_collection()
        coll.save(MutableDocument("a", {"v": 1}))
        other = sqlite3.connect(db.file, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(DatabaseBusyError) as info:
                coll.save(MutableDocument("b", {}))
            assert "locked" in str(info.value) and info.value.hint
        finally:
            other.execute("ROLLBACK")
            other.close()
        coll.save(MutableDocument("b", {}))
        assert coll.count == 2


def test_corrupt_file(tmp_path: Path) -> None:
    folder = tmp_path / "bad.peerbase"
    folder.mkdir()
    (folder / "db.sqlite3").write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(CorruptDatabaseError) as info:
        Database("bad", tmp_path)
    assert "corrupt" in str(info.value) and "backup" in str(info.value)


def test_disk_full_in_sqlite_rolls_back(tmp_path: Path) -> None:
    with Database("full", tmp_path) as db:
        coll = db.default_collection()
        coll.save(MutableDocument("keep", {"v": "safe"}))
        (pages,) = db._conn.execute("PRAGMA page_count").fetchone()
        db._conn.execute(f"PRAGMA max_page_count = {pages + 2}")  # SQLite's own size cap
        with pytest.raises(DiskFullError) as info, db.in_batch():
            for i in range(200):
                coll.save(MutableDocument(f"big{i}", {"pad": "x" * 4000}))
        assert "disk full" in str(info.value) and "free disk space" in str(info.value)
        assert coll.count == 1 and coll.get_document("keep")["v"] == "safe"  # type: ignore[index]
        db._conn.execute("PRAGMA max_page_count = 1073741823")
        coll.save(MutableDocument("after", {"pad": "x" * 4000}))
        assert coll.count == 2
        assert db.integrity_check() == "ok"


def test_disk_full_while_writing_blob(tmp_path: Path) -> None:
    """A real write failure (file size limit of the process) while storing a blob."""
    script = textwrap.dedent(
        """
        import sys
        from engine.errors import DiskFullError
        from engine.store import Blob, Database, MutableDocument
        db = Database("blobfull", sys.argv[1])
        coll = db.default_collection()
        try:
            coll.save(MutableDocument("d", {"b": Blob("x/y", b"z" * 3_000_000)}))
        except DiskFullError as exc:
            print("DiskFullError:", exc)
        db.close()
        """
    )
    with Database("blobfull", tmp_path) as db:  # create the files before the limit applies
        db.default_collection().save(MutableDocument("first", {"v": 1}))

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))

    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        preexec_fn=limit,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("DiskFullError: disk full"), out.stdout + out.stderr
    with Database("blobfull", tmp_path) as db:
        coll = db.default_collection()
        assert coll.get_document("d") is None
        assert coll.get_document("first")["v"] == 1  # type: ignore[index]
        assert not list(db.blob_store.directory.iterdir())  # no half-written blob left
        assert db.integrity_check() == "ok"


def test_every_error_is_a_peerbase_error_with_a_hint() -> None:
    for cls in (CorruptDatabaseError, DatabaseBusyError, DiskFullError):
        err = cls("x")
        assert isinstance(err, PeerbaseError) and err.hint


def test_crash_mid_batch_keeps_whole_batches(tmp_path: Path) -> None:
    """SIGKILL a writer in the middle of batches: each batch is all there or not at all."""
    script = textwrap.dedent(
        """
        import sys
        from engine.store import Database, MutableDocument
        db = Database("crash", sys.argv[1])
        coll = db.default_collection()
        batch = 0
        while True:
            with db.in_batch():
                for i in range(500):
                    coll.save(MutableDocument(f"b{batch:05d}-{i:03d}", {"batch": batch, "i": i}))
            print(batch, flush=True)
            batch += 1
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.stdout is not None
    committed = -1
    for line in proc.stdout:
        committed = int(line)
        if committed >= 5:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    with Database("crash", tmp_path) as db:
        assert db.integrity_check() == "ok"
        coll = db.default_collection()
        per_batch: dict[int, int] = {}
        for doc in coll.iter_documents():
            per_batch[doc["batch"]] = per_batch.get(doc["batch"], 0) + 1
        assert all(count == 500 for count in per_batch.values()), per_batch
        assert set(per_batch) == set(range(len(per_batch)))
        assert len(per_batch) >= committed + 1
        assert coll.last_sequence == 500 * len(per_batch)
