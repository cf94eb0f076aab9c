"""`Collection`: documents of one scope/collection, with Couchbase Lite's API."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from engine.errors import ConflictError, NotFoundError
from engine.store.document import LAST_WRITE_WINS, ConcurrencyControl, Document, MutableDocument
from engine.store.names import check_doc_id
from engine.store.observers import CollectionChange, DocumentChange, ListenerToken
from engine.store.replication_api import ReplicationAPI
from engine.store.revid import new_rev_id
from engine.store.revtree import CLOSE_BODY, RevTree
from engine.store.schema import DELETED

TOMBSTONE_BODY = b"{}"


class Collection(ReplicationAPI):
    """A named set of documents inside a scope."""

    def __repr__(self) -> str:
        return f"Collection({self.full_name!r} of {self.database.name!r})"

    @property
    def count(self) -> int:
        """Number of live (not deleted) documents."""
        with self.database._read():
            (n,) = self._conn.execute(
                f"SELECT count(*) FROM {self._table} WHERE (flags & {DELETED}) = 0"
            ).fetchone()
        return int(n)

    # -- reading ----------------------------------------------------------------------

    def get_document(self, doc_id: str, *, include_deleted: bool = False) -> Document | None:
        """The current revision of a document, or None (also for deleted documents)."""
        check_doc_id(doc_id)
        with self.database._read():
            row = self._row(doc_id)
        if row is None or (row.deleted and not include_deleted):
            return None
        conflicts = tuple(row.rev_tree().conflicts()) if row.tree is not None else ()
        return Document(doc_id, row.rev, row.seq, row.deleted, row.body, conflicts, self)

    def document_ids(
        self, *, limit: int | None = None, after: str | None = None, include_deleted: bool = False
    ) -> list[str]:
        """Document IDs in ID order; page with `after` (the last ID of the previous page)."""
        sql = f"SELECT doc_id FROM {self._table} WHERE doc_id > ?"
        if not include_deleted:
            sql += f" AND (flags & {DELETED}) = 0"
        sql += " ORDER BY doc_id LIMIT ?"
        with self.database._read():
            rows = self._conn.execute(sql, (after or "", -1 if limit is None else limit))
            return [r[0] for r in rows]

    def iter_documents(
        self, since: int = 0, *, batch: int = 1000, include_deleted: bool = False
    ) -> Iterator[Document]:
        """All documents in sequence order, read `batch` rows at a time."""
        sql = f"SELECT seq, doc_id, rev, flags, body, tree FROM {self._table} WHERE seq > ?"
        if not include_deleted:
            sql += f" AND (flags & {DELETED}) = 0"
        sql += " ORDER BY seq LIMIT ?"
        while True:
            with self.database._read():
                rows = self._conn.execute(sql, (since, batch)).fetchall()
            for seq, doc_id, rev, flags, body, tree in rows:
                conflicts = (
                    tuple(RevTree.decode(rev, bool(flags & DELETED), body, tree).conflicts())
                    if tree is not None
                    else ()
                )
                yield Document(doc_id, rev, seq, bool(flags & DELETED), body, conflicts, self)
            if len(rows) < batch:
                return
            since = rows[-1][0]

    # -- writing ----------------------------------------------------------------------

    def save(self, doc: MutableDocument, concurrency: ConcurrencyControl = LAST_WRITE_WINS) -> None:
        """Save `doc` as a new revision; updates its rev_id and sequence.

        If the document changed since `doc` was read, LAST_WRITE_WINS saves on top of the
        current revision and FAIL_ON_CONFLICT raises ConflictError. Saving a document
        that has conflicts resolves them: the other branches are closed.
        """
        if not isinstance(doc, MutableDocument):
            raise TypeError("save() takes a MutableDocument (use doc.to_mutable())")
        body = self._encode_body(doc._props)
        if (
            doc.rev_id is None
            and concurrency is ConcurrencyControl.LAST_WRITE_WINS
            and self._save_new_in_batch(doc, body)
        ):
            return
        self._put(doc, body, deleted=False, concurrency=concurrency)

    def _save_new_in_batch(self, doc: MutableDocument, body: bytes) -> bool:
        """Fast path for a new document inside in_batch(); False if it does not apply.

        The row is buffered and written with the batch's other new rows in one
        executemany, before any other read or write and at the latest at commit. A
        document that turns out to exist is then saved on top of it (last write wins).
        """
        db = self.database
        with db._lock:
            txn = db._txn  # not None: this thread owns the open transaction (it holds the lock)
            if txn is None or db._closed:
                return False
            doc_id = doc.id
            if type(doc_id) is not str or not 0 < len(doc_id) <= 62:
                check_doc_id(doc_id)  # the slow, complete check only when needed
            rev_id = new_rev_id(None, False, body)
            coll_id = self.id
            seq = txn.seqs.get(coll_id)
            seq = seq + 1 if seq is not None else db._next_seq(txn, self)
            txn.seqs[coll_id] = seq
            txn.pending.append((self, doc, (seq, doc_id, rev_id, 0, body, None), body))
            changed = txn.changes.get(coll_id)
            if changed is None:
                txn.record(self, doc_id)
            else:
                changed[1].append(doc_id)
            if len(txn.pending) >= 1000:
                db._flush()
        doc.rev_id, doc.sequence, doc.deleted = rev_id, seq, False
        doc.conflicts = ()
        return True

    def _redo_unsaved(self, entries: list[tuple[Any, Any, tuple[Any, ...], bytes]]) -> None:
        """After a buffered insert: save again, normally, the rows that were not inserted."""
        rows = self._rows(e[2][1] for e in entries)
        for _, doc, (seq, doc_id, *_), body in entries:
            row = rows.get(doc_id)
            if row is not None and row.seq == seq:
                continue  # this one went in
            doc.rev_id = None  # it was never stored: save it on top of what is there
            self._put(doc, body, deleted=False, concurrency=LAST_WRITE_WINS)
            rows[doc_id] = self._row(doc_id)  # type: ignore[assignment]

    def delete(
        self,
        doc: Document | str,
        concurrency: ConcurrencyControl = LAST_WRITE_WINS,
    ) -> None:
        """Delete a document (a tombstone revision replicates the deletion)."""
        if isinstance(doc, str):
            found = self.get_document(doc)
            if found is None:
                raise NotFoundError(f"document {doc!r} not found in {self.full_name}")
            doc = found
        self._put(doc, TOMBSTONE_BODY, deleted=True, concurrency=concurrency)

    def _put(
        self, doc: Document, body: bytes, *, deleted: bool, concurrency: ConcurrencyControl
    ) -> None:
        doc_id = check_doc_id(doc.id)
        with self.database._write() as txn:
            if doc.rev_id is None and not deleted:  # most likely new: skip the lookup
                rev_id = new_rev_id(None, False, body)
                new_seq = self._insert_new(txn, doc_id, rev_id, False, body, if_absent=True)
                if new_seq is not None:
                    doc.rev_id, doc.sequence, doc.deleted = rev_id, new_seq, False
                    doc.conflicts = ()
                    return
            row = self._row(doc_id)
            if row is None:
                if deleted:
                    raise NotFoundError(f"document {doc_id!r} not found in {self.full_name}")
                rev_id = new_rev_id(None, False, body)
                seq = self._insert_new(txn, doc_id, rev_id, False, body) or 0
            else:
                stale = doc.rev_id != row.rev and not (doc.rev_id is None and row.deleted)
                if stale and concurrency is ConcurrencyControl.FAIL_ON_CONFLICT:
                    raise ConflictError(
                        f"document {doc_id!r} changed: it is at {row.rev}, "
                        f"this copy is based on {doc.rev_id}"
                    )
                if deleted and row.deleted and doc.rev_id == row.rev:
                    raise NotFoundError(f"document {doc_id!r} is already deleted")
                tree = row.rev_tree()
                current = tree.find(row.rev)
                assert current is not None
                rev_id = new_rev_id(row.rev, deleted, body)
                if rev_id in tree:  # the same edit again: nothing new to store
                    doc.rev_id, doc.sequence, doc.deleted = rev_id, row.seq, row.deleted
                    return
                self._close_other_branches(tree, keep=current)
                tree.add_child(current, rev_id, deleted, body)
                seq, _ = self._write_tree(txn, doc_id, tree, True)
        doc.rev_id, doc.sequence, doc.deleted, doc.conflicts = rev_id, seq, deleted, ()

    @staticmethod
    def _close_other_branches(tree: RevTree, keep: int) -> None:
        """End every other open branch with a closing tombstone (how a merge resolves).

        The tombstone's revID depends only on its parent, so peers resolving the same
        conflict the same way create the same revision.
        """
        for leaf in tree.leaves():
            rev = tree.revs[leaf]
            if leaf == keep or rev.closed:
                continue
            tomb = new_rev_id(rev.rev_id, True, CLOSE_BODY)
            tree.add_child(leaf, tomb, True, CLOSE_BODY, closed=True)

    def resolve_conflict(
        self,
        doc_id: str,
        winning_rev_id: str,
        merged: Mapping[str, Any] | None = None,
        *,
        delete: bool = False,
    ) -> str:
        """Keep the branch of `winning_rev_id`, close the others; returns the new current rev.

        With `merged` (or `delete=True`) a new revision is added on top of the winner.
        """
        with self.database._write() as txn:
            row = self._require_row(doc_id)
            tree = row.rev_tree()
            winner = tree.find(winning_rev_id)
            if winner is None or not tree.is_leaf(winner):
                raise NotFoundError(f"{winning_rev_id} is not a leaf revision of {doc_id!r}")
            self._close_other_branches(tree, keep=winner)
            if merged is not None or delete:
                body = TOMBSTONE_BODY if delete else self._encode_body(dict(merged or {}))
                rev_id = new_rev_id(winning_rev_id, delete, body)
                if rev_id not in tree:
                    tree.add_child(winner, rev_id, delete, body)
            _, cur = self._write_tree(txn, doc_id, tree, True)
            return tree.revs[cur].rev_id

    def purge(self, doc: Document | str) -> None:
        """Remove every trace of a document (not replicated)."""
        doc_id = doc if isinstance(doc, str) else doc.id
        with self.database._write():
            self._purge_locked(doc_id)

    # -- expiration -------------------------------------------------------------------

    def set_document_expiration(self, doc_id: str, when: dt.datetime | float | None) -> None:
        """Purge the document automatically at `when` (None cancels)."""
        ts = when.timestamp() if isinstance(when, dt.datetime) else when
        with self.database._write():
            cur = self._conn.execute(
                f"UPDATE {self._table} SET expiry = ? WHERE doc_id = ?", (ts, doc_id)
            )
            if cur.rowcount == 0:
                raise NotFoundError(f"document {doc_id!r} not found in {self.full_name}")
        if ts is not None:
            self.database._housekeeping()

    def get_document_expiration(self, doc_id: str) -> dt.datetime | None:
        with self.database._read():
            row = self._conn.execute(
                f"SELECT expiry FROM {self._table} WHERE doc_id = ?", (doc_id,)
            ).fetchone()
        if row is None:
            raise NotFoundError(f"document {doc_id!r} not found in {self.full_name}")
        return None if row[0] is None else dt.datetime.fromtimestamp(row[0], dt.UTC)

    # -- listeners --------------------------------------------------------------------

    def add_change_listener(self, callback: Callable[[CollectionChange], Any]) -> ListenerToken:
        """Call `callback` after each commit that changes documents of this collection."""
        token = self.database.notifier.add(self.id, callback)
        self.database._housekeeping()
        return token

    def add_document_change_listener(
        self, doc_id: str, callback: Callable[[DocumentChange], Any]
    ) -> ListenerToken:
        """Call `callback` after each commit that changes document `doc_id`."""
        token = self.database.notifier.add((self.id, doc_id), callback)
        self.database._housekeeping()
        return token
