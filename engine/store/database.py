"""`Database`: one directory holding a SQLite file (WAL) and a blob folder."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import shutil
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import orjson
import platformdirs

from engine.errors import ConflictError, DatabaseClosedError, InvalidNameError, NotFoundError
from engine.store import schema
from engine.store.blob import BlobStore, is_blob_dict
from engine.store.collection import Collection
from engine.store.housekeeper import Housekeeper
from engine.store.kv import KVTable
from engine.store.names import DEFAULT_NAME, check_collection_name, check_database_name
from engine.store.observers import Notifier
from engine.store.sqlerrors import sqlite_errors, translate

P = ParamSpec("P")
T = TypeVar("T")

SUFFIX = ".peerbase"
DB_FILE = "db.sqlite3"


def default_directory() -> Path:
    """Where databases live when no directory is given (the user data dir)."""
    return Path(platformdirs.user_data_dir("peerbase", appauthor=False))


@dataclass
class _Txn:
    """State of the open write transaction."""

    seqs: dict[int, int] = field(default_factory=dict)
    changes: dict[int, tuple[Collection, list[str]]] = field(default_factory=dict)
    #: New-document rows saved in a batch, written with one executemany before anything
    #: else touches the database (see Collection._save_new_in_batch).
    pending: list[tuple[Any, Any, tuple[Any, ...], bytes]] = field(default_factory=list)

    def record(self, collection: Any, doc_id: str) -> None:
        entry = self.changes.get(collection.id)
        if entry is None:
            self.changes[collection.id] = (collection, [doc_id])
        else:
            entry[1].append(doc_id)


class Database:
    """A Peerbase database: scopes, collections, documents, blobs.

    All methods are thread-safe (one connection behind a lock). From asyncio code, run
    store calls through `run()` so the event loop never waits on SQLite.
    """

    def __init__(
        self,
        name: str,
        directory: str | Path | None = None,
        *,
        max_rev_tree_depth: int = 20,
        full_sync: bool = False,
        busy_timeout: float = 5.0,
        _path: Path | None = None,
    ) -> None:
        self.name = check_database_name(name)
        if _path is None:
            base = Path(directory) if directory is not None else default_directory()
            _path = base / f"{name}{SUFFIX}"
        self.path = _path
        self._open(max_rev_tree_depth, full_sync, busy_timeout)

    @classmethod
    def open_path(cls, path: str | Path, **options: Any) -> Database:
        """Open the database stored directly in folder `path` (named after the folder)."""
        path = Path(path)
        return cls(path.name.removesuffix(SUFFIX), _path=path, **options)

    @staticmethod
    def exists(name: str, directory: str | Path | None = None) -> bool:
        base = Path(directory) if directory is not None else default_directory()
        return (base / f"{name}{SUFFIX}" / DB_FILE).is_file()

    def _open(self, max_depth: int, full_sync: bool, busy_timeout: float) -> None:
        if max_depth < 1:
            raise ValueError("max_rev_tree_depth must be at least 1")
        self.max_rev_tree_depth = max_depth
        self._lock = threading.RLock()
        self._depth = 0
        self._txn: _Txn | None = None
        self._collections: dict[int, Collection] = {}
        self._closed = False
        self._executor: ThreadPoolExecutor | None = None
        self.notifier = Notifier()
        self._housekeeper: Housekeeper | None = None
        self.path.mkdir(parents=True, exist_ok=True)
        self.file = self.path / DB_FILE
        self.blob_store = BlobStore(self.path / "blobs")
        with sqlite_errors(self.file):
            self._conn = sqlite3.connect(
                self.file, isolation_level=None, check_same_thread=False, timeout=busy_timeout
            )
        try:
            with sqlite_errors(self.file):
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute(f"PRAGMA synchronous={'FULL' if full_sync else 'NORMAL'}")
                self._conn.execute("PRAGMA cache_size=-32000")
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    self.uuid = schema.initialise(self._conn)
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
        except BaseException:
            self._conn.close()
            raise
        if self._next_expiry() is not None:
            self._housekeeping()

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def is_closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close the database; pending listeners stop; idempotent."""
        with self._lock:
            if self._closed:
                return
            if self._depth:
                raise RuntimeError("cannot close a database inside in_batch()")
            self._closed = True
        if self._housekeeper is not None:
            self._housekeeper.stop()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self.notifier.clear()
        with self._lock:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("PRAGMA optimize")
            self._conn.close()

    def delete(self) -> None:
        """Close the database and remove its directory."""
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Database({self.name!r}, path={str(self.path)!r})"

    def _check_open(self) -> None:
        if self._closed:
            raise DatabaseClosedError(f"database {self.name!r} is closed")

    # -- asyncio bridge -------------------------------------------------------------------

    @property
    def executor(self) -> ThreadPoolExecutor:
        """The single worker thread that runs this database's calls for asyncio code."""
        # Hot path without the lock: the database thread holds `_lock` for a whole
        # transaction (a 500-revision insert, a WAL checkpoint), and waiting for it here
        # blocks the event loop (seen in loop stalls of the replication benchmark).
        executor = self._executor
        if executor is not None and not self._closed:
            return executor
        with self._lock:
            self._check_open()
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"db-{self.name}")
            return self._executor

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a blocking store call on the database thread and await its result."""
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))
        except RuntimeError:  # closed (executor shut down) between the check and the submit
            self._check_open()
            raise
        return await future

    # -- transactions ---------------------------------------------------------------------

    @contextlib.contextmanager
    def in_batch(self) -> Iterator[None]:
        """Group writes in one transaction; listeners fire once after the commit."""
        with self._write():
            yield

    def _write(self) -> _WriteScope:
        """A write transaction (joined if one is already open on this thread)."""
        return _WriteScope(self)

    def _flush(self) -> None:
        """Write the batch's buffered new-document rows (caller holds the lock)."""
        txn = self._txn
        if txn is None or not txn.pending:
            return
        pending, txn.pending = txn.pending, []
        by_table: dict[Any, list[tuple[Any, Any, tuple[Any, ...], bytes]]] = {}
        for entry in pending:
            by_table.setdefault(entry[0], []).append(entry)
        for coll, entries in by_table.items():
            cur = self._conn.executemany(coll._insert_if_absent_sql, [e[2] for e in entries])
            if cur.rowcount == len(entries):
                continue
            # Some documents existed (or were saved twice): redo those the normal way.
            coll._redo_unsaved(entries)

    def _commit(self, txn: _Txn) -> None:
        self._flush()
        for coll_id, seq in txn.seqs.items():
            self._conn.execute("UPDATE collections SET last_seq = ? WHERE id = ?", (seq, coll_id))
        self._conn.execute("COMMIT")

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._conn.execute("ROLLBACK")

    def _after_commit(self, txn: _Txn) -> None:
        for coll_id, seq in txn.seqs.items():
            coll = self._collections.get(coll_id)
            if coll is not None:
                coll._notified_seq = max(coll._notified_seq, seq)

    def _next_seq(self, txn: _Txn, collection: KVTable) -> int:
        """Allocate the next sequence of `collection` inside `txn`."""
        seq = txn.seqs.get(collection.id)
        if seq is None:
            (seq,) = self._conn.execute(
                "SELECT last_seq FROM collections WHERE id = ?", (collection.id,)
            ).fetchone()
            if seq > collection._notified_seq:  # another process wrote since we last looked
                for (doc_id,) in self._conn.execute(
                    f"SELECT doc_id FROM {collection._table} WHERE seq > ?",
                    (collection._notified_seq,),
                ):
                    txn.record(collection, doc_id)
        seq += 1
        txn.seqs[collection.id] = seq
        return seq

    def _read(self) -> contextlib.AbstractContextManager[None]:
        return _ReadGuard(self)

    # -- collections ----------------------------------------------------------------------

    def _collection_obj(self, coll_id: int, scope: str, name: str) -> Collection:
        coll = self._collections.get(coll_id)
        if coll is None:
            (last,) = self._conn.execute(
                "SELECT last_seq FROM collections WHERE id = ?", (coll_id,)
            ).fetchone()
            coll = Collection(self, coll_id, scope, name, last)
            self._collections[coll_id] = coll
        return coll

    def default_collection(self) -> Collection:
        coll = self.collection(DEFAULT_NAME, DEFAULT_NAME)
        assert coll is not None
        return coll

    def collection(self, name: str, scope: str = DEFAULT_NAME) -> Collection | None:
        """The named collection, or None if it does not exist."""
        check_collection_name(name)
        check_collection_name(scope, what="scope")
        with self._read():
            row = self._conn.execute(
                "SELECT id FROM collections WHERE scope = ? AND name = ?", (scope, name)
            ).fetchone()
            return None if row is None else self._collection_obj(row[0], scope, name)

    def create_collection(self, name: str, scope: str = DEFAULT_NAME) -> Collection:
        """Create the collection (or return the existing one)."""
        check_collection_name(name)
        check_collection_name(scope, what="scope")
        if scope == DEFAULT_NAME and name == DEFAULT_NAME:
            return self.default_collection()
        if DEFAULT_NAME in (name,) and scope != DEFAULT_NAME:
            raise InvalidNameError("only the _default scope may hold a _default collection")
        with self._write():
            self._conn.execute(
                "INSERT OR IGNORE INTO collections (scope, name) VALUES (?, ?)", (scope, name)
            )
            (coll_id,) = self._conn.execute(
                "SELECT id FROM collections WHERE scope = ? AND name = ?", (scope, name)
            ).fetchone()
            schema.create_kv_table(self._conn, coll_id)
            return self._collection_obj(coll_id, scope, name)

    def collections(self, scope: str = DEFAULT_NAME) -> list[Collection]:
        with self._read():
            rows = self._conn.execute(
                "SELECT id, name FROM collections WHERE scope = ? ORDER BY id", (scope,)
            ).fetchall()
            return [self._collection_obj(i, scope, n) for i, n in rows]

    def scopes(self) -> list[str]:
        with self._read():
            rows = self._conn.execute("SELECT DISTINCT scope FROM collections ORDER BY scope")
            return [r[0] for r in rows]

    def all_collections(self) -> list[Collection]:
        with self._read():
            rows = self._conn.execute("SELECT id, scope, name FROM collections ORDER BY id")
            return [self._collection_obj(*row) for row in rows.fetchall()]

    def delete_collection(self, name: str, scope: str = DEFAULT_NAME) -> None:
        """Delete a collection and all its documents (not the default collection)."""
        if name == DEFAULT_NAME and scope == DEFAULT_NAME:
            raise InvalidNameError("the default collection cannot be deleted", hint="")
        coll = self.collection(name, scope)
        if coll is None:
            raise NotFoundError(f"collection {scope}.{name} does not exist")
        with self._write():
            self._conn.execute(f"DROP TABLE IF EXISTS {coll._table}")
            self._conn.execute("DELETE FROM collections WHERE id = ?", (coll.id,))
        self._collections.pop(coll.id, None)
        coll._deleted = True

    # -- local (non-replicated) documents -------------------------------------------------

    def get_local(self, doc_id: str) -> tuple[str, dict[str, Any]] | None:
        """(rev, body) of a local document such as a checkpoint, or None."""
        with self._read():
            row = self._conn.execute(
                "SELECT rev, body FROM local_docs WHERE id = ?", (doc_id,)
            ).fetchone()
        return None if row is None else (row[0], orjson.loads(row[1]))

    def put_local(self, doc_id: str, body: dict[str, Any], expected_rev: str | None) -> str:
        """Store a local document if its current rev is `expected_rev`; returns the new rev.

        The revs count ``1-local``, ``2-local``...; a mismatch raises ConflictError.
        """
        data = orjson.dumps(body)
        with self._write():
            row = self._conn.execute(
                "SELECT rev FROM local_docs WHERE id = ?", (doc_id,)
            ).fetchone()
            current = row[0] if row else None
            if (current or None) != (expected_rev or None):
                raise ConflictError(
                    f"local document {doc_id!r} is at rev {current!r}, not {expected_rev!r}"
                )
            gen = int(current.split("-")[0]) + 1 if current else 1
            rev = f"{gen}-local"
            self._conn.execute(
                "INSERT OR REPLACE INTO local_docs VALUES (?, ?, ?)", (doc_id, rev, data)
            )
        return rev

    def local_ids(self, prefix: str = "") -> list[str]:
        """IDs of local documents starting with `prefix` (e.g. "checkpoint/")."""
        with self._read():
            rows = self._conn.execute(
                "SELECT id FROM local_docs WHERE substr(id, 1, ?) = ? ORDER BY id",
                (len(prefix), prefix),
            )
            return [r[0] for r in rows]

    def delete_local(self, doc_id: str) -> None:
        with self._write():
            self._conn.execute("DELETE FROM local_docs WHERE id = ?", (doc_id,))

    def remote_id(self, address: str) -> int:
        """A small stable number for a remote peer (used to track what it has)."""
        with self._write():
            self._conn.execute("INSERT OR IGNORE INTO remotes (address) VALUES (?)", (address,))
            (rid,) = self._conn.execute(
                "SELECT id FROM remotes WHERE address = ?", (address,)
            ).fetchone()
        return int(rid)

    # -- maintenance ----------------------------------------------------------------------

    def compact(self) -> int:
        """Delete blobs no document references; returns how many were removed."""
        referenced: set[str] = set()
        with self._read():
            for coll in self.all_collections():
                for body, tree in self._conn.execute(
                    f"SELECT body, tree FROM {coll._table}"
                    " WHERE instr(body, 'digest') OR tree IS NOT NULL"
                ):
                    _collect_digests(orjson.loads(body), referenced)
                    if tree is not None:
                        for node in orjson.loads(tree)["r"]:
                            if node[3] is not None:
                                _collect_digests(orjson.loads(node[3]), referenced)
            removed = 0
            for digest in self.blob_store.digests() - referenced:
                self.blob_store.delete(digest)
                removed += 1
            with sqlite_errors(self.file):
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return removed

    def integrity_check(self) -> str:
        with self._read():
            return str(self._conn.execute("PRAGMA integrity_check").fetchone()[0])

    # -- housekeeping (external changes, expiration) --------------------------------------

    def _housekeeping(self) -> None:
        with self._lock:
            if self._housekeeper is None and not self._closed:
                self._housekeeper = Housekeeper(self)
                self._housekeeper.start()
            elif self._housekeeper is not None:
                self._housekeeper.wake()

    def _next_expiry(self) -> float | None:
        with self._read():
            best: float | None = None
            for coll in self.all_collections():
                (when,) = self._conn.execute(
                    f"SELECT min(expiry) FROM {coll._table} WHERE expiry IS NOT NULL"
                ).fetchone()
                if when is not None and (best is None or when < best):
                    best = when
            return best

    def _purge_expired(self, now: float) -> None:
        for coll in self.all_collections():
            with self._read():
                ids = [
                    r[0]
                    for r in self._conn.execute(
                        f"SELECT doc_id FROM {coll._table} WHERE expiry <= ?", (now,)
                    )
                ]
            if ids:
                with self._write():
                    for doc_id in ids:
                        coll._purge_locked(doc_id, missing_ok=True)

    def _scan_external(self) -> None:
        """Notify listeners of commits made by other connections or processes."""
        pending: list[tuple[Collection, list[str]]] = []
        with self._read():
            for coll in list(self._collections.values()):
                if not self.notifier.has_listeners(coll.id):
                    continue
                row = self._conn.execute(
                    "SELECT last_seq FROM collections WHERE id = ?", (coll.id,)
                ).fetchone()
                if row is None or row[0] <= coll._notified_seq:
                    continue
                ids = [
                    r[0]
                    for r in self._conn.execute(
                        f"SELECT doc_id FROM {coll._table} WHERE seq > ? ORDER BY seq",
                        (coll._notified_seq,),
                    )
                ]
                coll._notified_seq = row[0]
                pending.append((coll, ids))
        for coll, ids in pending:
            self.notifier.notify(coll, ids)


class _WriteScope:
    """Context manager of a write transaction; nested scopes join the outer one."""

    __slots__ = ("_db", "_outer")

    def __init__(self, db: Database) -> None:
        self._db = db
        self._outer = False

    def __enter__(self) -> _Txn:
        db = self._db
        db._lock.acquire()
        try:
            db._check_open()
            if db._txn is not None:
                db._depth += 1
                if db._txn.pending:
                    try:
                        db._flush()
                    except BaseException:
                        db._depth -= 1
                        raise
                return db._txn
            try:
                db._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise translate(exc, db.file) from exc
        except BaseException:
            db._lock.release()
            raise
        self._outer = True
        db._txn, db._depth = _Txn(), 1
        return db._txn

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        db = self._db
        if not self._outer:
            db._depth -= 1
            db._lock.release()
            return
        txn = db._txn
        assert txn is not None
        try:
            if exc is None:
                try:
                    db._commit(txn)
                except sqlite3.Error as err:
                    db._rollback()
                    raise translate(err, db.file) from err
                db._after_commit(txn)
            else:
                db._rollback()
                if isinstance(exc, sqlite3.Error):
                    raise translate(exc, db.file) from exc
                return
        finally:
            db._txn, db._depth = None, 0
            db._lock.release()
        for collection, doc_ids in txn.changes.values():
            db.notifier.notify(collection, doc_ids)


class _ReadGuard:
    """Hold the database lock for a read and translate sqlite3 errors."""

    __slots__ = ("_db",)

    def __init__(self, db: Database) -> None:
        self._db = db

    def __enter__(self) -> None:
        db = self._db
        db._lock.acquire()
        if db._closed:
            db._lock.release()
            raise DatabaseClosedError(f"database {db.name!r} is closed")
        if db._txn is not None and db._txn.pending:
            try:
                db._flush()  # read your own writes
            except sqlite3.Error as exc:
                db._lock.release()
                raise translate(exc, db.file) from exc
            except BaseException:
                db._lock.release()
                raise

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db._lock.release()
        if isinstance(exc, sqlite3.Error):
            raise translate(exc, self._db.file) from exc


def _collect_digests(value: Any, out: set[str]) -> None:
    if isinstance(value, dict):
        if is_blob_dict(value):
            out.add(str(value["digest"]))
        elif isinstance(value.get("_attachments"), dict):
            for meta in value["_attachments"].values():
                if isinstance(meta, dict) and "digest" in meta:
                    out.add(str(meta["digest"]))
        for item in value.values():
            _collect_digests(item, out)
    elif isinstance(value, list):
        for item in value:
            _collect_digests(item, out)
