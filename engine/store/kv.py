"""Row-level access to one collection's `kv_<n>` table, shared by the collection APIs."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from engine.errors import (
    BlobError,
    DatabaseClosedError,
    InvalidBodyError,
    NotFoundError,
    PeerbaseError,
)
from engine.store.blob import Blob
from engine.store.revtree import RevTree
from engine.store.schema import CONFLICTED, DELETED, kv_table

if TYPE_CHECKING:
    from engine.store.database import Database, _Txn

IN_CHUNK = 500  # SQLite's default limit on host parameters is far above this


class Row(NamedTuple):
    seq: int
    rev: str
    flags: int
    body: bytes
    tree: bytes | None

    @property
    def deleted(self) -> bool:
        return bool(self.flags & DELETED)

    def rev_tree(self) -> RevTree:
        return RevTree.decode(self.rev, self.deleted, self.body, self.tree)


def check_finite(value: Any) -> None:
    """Reject NaN and infinities, which JSON cannot represent (orjson would write null)."""
    stack = [value]
    while stack:
        container = stack.pop()
        for item in container.values() if type(container) is dict else container:
            kind = type(item)
            if kind is str or kind is int or kind is bool or item is None:
                continue
            if kind is float:
                if not math.isfinite(item):
                    raise InvalidBodyError(
                        f"document body holds {item!r}, which JSON cannot represent"
                    )
            elif (
                kind is dict
                or kind is list
                or kind is tuple
                or isinstance(item, (dict, list, tuple))
            ):
                stack.append(item)
            elif isinstance(item, float) and not math.isfinite(item):
                raise InvalidBodyError(f"document body holds {item!r}, which JSON cannot represent")


class KVTable:
    """Low-level operations on one collection's table (callers hold the database lock)."""

    def __init__(self, db: Database, coll_id: int, scope: str, name: str, last_seq: int) -> None:
        self.database = db
        self.id = coll_id
        self.scope = scope
        self.name = name
        self._table = kv_table(coll_id)
        self._notified_seq = last_seq
        self._deleted = False
        self._select_one = f"SELECT seq, rev, flags, body, tree FROM {self._table} WHERE doc_id = ?"
        columns = "(seq, doc_id, rev, flags, body, tree) VALUES (?, ?, ?, ?, ?, ?)"
        self._insert_sql = f"INSERT INTO {self._table} {columns}"
        self._insert_if_absent_sql = f"INSERT OR IGNORE INTO {self._table} {columns}"
        # Mark (?1 = remote id) the current revision ?3 of document ?2 when its tree is
        # absent (a lone revision) or has one node (nodes are joined by "],["): the tree
        # RevTree.encode would write, built by SQLite.
        self._mark_current_sql = (
            f"UPDATE {self._table} SET tree = CAST(CASE WHEN tree IS NULL THEN json_object("
            f"'r', json_array(json_array(rev, -1, flags & {DELETED}, NULL)),"
            " 'm', json_object(?1, rev))"
            """ ELSE json_set(CAST(tree AS TEXT), '$.m."' || ?1 || '"', rev) END AS BLOB)"""
            " WHERE doc_id = ?2 AND rev = ?3 AND (tree IS NULL OR instr(tree, X'5D2C5B') = 0)"
        )

    @property
    def full_name(self) -> str:
        return f"{self.scope}.{self.name}"

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._deleted:
            raise DatabaseClosedError(f"collection {self.full_name} was deleted")
        return self.database._conn

    def _row(self, doc_id: str) -> Row | None:
        found = self._conn.execute(self._select_one, (doc_id,)).fetchone()
        return None if found is None else Row(*found)

    def _rows(self, doc_ids: Iterable[str]) -> dict[str, Row]:
        return {
            doc_id: Row(*rest)
            for doc_id, *rest in self._select_in("doc_id, seq, rev, flags, body, tree", doc_ids)
        }

    def _select_in(
        self, columns: str, doc_ids: Iterable[str], where: str = ""
    ) -> Iterator[tuple[Any, ...]]:
        """``SELECT columns`` of the rows of these documents (in chunks of IN_CHUNK)."""
        ids = list(dict.fromkeys(doc_ids))
        for i in range(0, len(ids), IN_CHUNK):
            part = ids[i : i + IN_CHUNK]
            marks = ",".join("?" * len(part))
            yield from self._conn.execute(
                f"SELECT {columns} FROM {self._table} WHERE {where}doc_id IN ({marks})", part
            )

    def _require_row(self, doc_id: str) -> Row:
        row = self._row(doc_id)
        if row is None:
            raise NotFoundError(f"document {doc_id!r} not found in {self.full_name}")
        return row

    def _encode_body(self, data: Any) -> bytes:
        """Canonical JSON of a new body; Blob values are written to the blob store."""
        if not isinstance(data, dict):
            raise InvalidBodyError(f"document body must be a dict, not {type(data).__name__}")
        try:
            encoded = orjson.dumps(data, default=self._json_default, option=orjson.OPT_SORT_KEYS)
        except TypeError as exc:
            if isinstance(exc.__cause__, PeerbaseError):  # e.g. disk full storing a Blob
                raise exc.__cause__ from None
            if isinstance(exc.__cause__, OSError):
                raise BlobError(f"could not store a blob: {exc.__cause__}") from exc.__cause__
            raise InvalidBodyError(f"document body is not JSON-serialisable: {exc}") from None
        if b"null" in encoded:  # orjson writes NaN and infinities as null: look closer
            check_finite(data)
        return encoded

    def _json_default(self, obj: Any) -> Any:
        """orjson hook: store Blob values and replace them with their metadata dict."""
        if isinstance(obj, Blob):
            obj.install(self.database.blob_store)
            return obj.properties
        raise TypeError(f"type {type(obj).__name__} is not JSON serialisable")

    def _insert_new(
        self,
        txn: _Txn,
        doc_id: str,
        rev_id: str,
        deleted: bool,
        body: bytes,
        *,
        if_absent: bool = False,
    ) -> int | None:
        """Insert a document's first row; with `if_absent`, None if it already exists."""
        seq = self.database._next_seq(txn, self)
        flags = DELETED if deleted else 0
        cur = self._conn.execute(
            self._insert_if_absent_sql if if_absent else self._insert_sql,
            (seq, doc_id, rev_id, flags, body, None),
        )
        if cur.rowcount == 0:
            txn.seqs[self.id] = seq - 1  # not used: sequences stay dense
            return None
        txn.record(self, doc_id)
        return seq

    def _write_tree(
        self, txn: _Txn, doc_id: str, tree: RevTree, exists: bool, *, bump: bool = True
    ) -> tuple[int, int]:
        """Prune and store `tree`; returns (sequence, current index)."""
        tree.prune(self.database.max_rev_tree_depth)
        cur = tree.current()
        rev = tree.revs[cur]
        body = rev.body if rev.body is not None else b"{}"
        blob = tree.encode(cur)
        flags = (DELETED if rev.deleted else 0) | (CONFLICTED if tree.in_conflict() else 0)
        if not bump:
            self._conn.execute(
                f"UPDATE {self._table} SET tree = ? WHERE doc_id = ?", (blob, doc_id)
            )
            return 0, cur  # the sequence is unchanged
        seq = self.database._next_seq(txn, self)
        if exists:
            self._conn.execute(
                f"UPDATE {self._table} SET seq = ?, rev = ?, flags = ?, body = ?, tree = ?"
                " WHERE doc_id = ?",
                (seq, rev.rev_id, flags, body, blob, doc_id),
            )
        else:
            self._conn.execute(
                f"INSERT INTO {self._table} (seq, doc_id, rev, flags, body, tree)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (seq, doc_id, rev.rev_id, flags, body, blob),
            )
        txn.record(self, doc_id)
        return seq, cur

    def _purge_locked(self, doc_id: str, *, missing_ok: bool = False) -> None:
        txn = self.database._txn
        assert txn is not None
        cur = self._conn.execute(f"DELETE FROM {self._table} WHERE doc_id = ?", (doc_id,))
        if cur.rowcount == 0:
            if missing_ok:
                return
            raise NotFoundError(f"document {doc_id!r} not found in {self.full_name}")
        txn.record(self, doc_id)
