"""The replication-facing side of a collection: foreign revisions, revs-diff, changes."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from engine.errors import InvalidBodyError
from engine.store.kv import KVTable, Row
from engine.store.revid import canonical_json, generation, is_valid_rev_id
from engine.store.revtree import RevTree
from engine.store.schema import CONFLICTED, DELETED

if TYPE_CHECKING:
    from engine.store.database import _Txn

MAX_POSSIBLE_ANCESTORS = 10


@dataclass(slots=True)
class Change:
    """One entry of a collection's changes feed (the current revision of a document)."""

    sequence: int
    doc_id: str
    rev_id: str
    deleted: bool
    body_size: int
    #: The revision of this document the remote asked about is known to hold, if any.
    held_rev: str | None = None


@dataclass(slots=True)
class RevisionData:
    """A revision read for sending: its body and its ancestry (newest first)."""

    doc_id: str
    rev_id: str
    deleted: bool
    body: bytes
    history: list[str]
    sequence: int


@dataclass(slots=True)
class RevisionInsert:
    """A foreign revision to store: `history` lists its ancestors, parent first."""

    doc_id: str
    rev_id: str
    history: Sequence[str]
    body: bytes | Mapping[str, Any]
    deleted: bool = False
    #: Refuse the revision if it would branch off the current one (conflict-free peers).
    no_conflicts: bool = False


@dataclass(slots=True)
class InsertResult:
    """What inserting one foreign revision did."""

    doc_id: str
    rev_id: str
    inserted: bool
    current_rev_id: str
    current_deleted: bool
    conflicts: tuple[str, ...] = field(default=())
    #: The document's new sequence; 0 when nothing new was stored (known or rejected).
    sequence: int = 0
    #: True if refused because it would have created a conflict (`no_conflicts`).
    rejected: bool = False
    #: Leaves not closed by a conflict resolution, current first.
    open_leaves: tuple[str, ...] = ()
    #: Two or more open branches, at least one live: the active side must resolve it.
    conflicted: bool = False


class ReplicationAPI(KVTable):
    """Operations the replicator and the passive peer need."""

    # -- reading ----------------------------------------------------------------------

    def changes_since(
        self,
        since: int,
        limit: int | None = None,
        *,
        active_only: bool = False,
        all_leaves: bool = False,
        remote_id: int | None = None,
    ) -> list[Change]:
        """Current revisions of documents changed after sequence `since`, in order.

        With `all_leaves`, a document's other branch ends follow its current revision
        (same sequence): a peer that accepts branches needs them to converge. With
        `remote_id`, each change says which revision that remote is known to hold.
        """
        sql = f"SELECT seq, doc_id, rev, flags, length(body), tree FROM {self._table} WHERE seq > ?"
        if active_only:
            sql += f" AND (flags & {DELETED}) = 0"
        sql += " ORDER BY seq LIMIT ?"
        key = None if remote_id is None else str(remote_id)
        out: list[Change] = []
        with self.database._read():
            rows = self._conn.execute(sql, (since, -1 if limit is None else limit)).fetchall()
            for seq, doc_id, rev, flags, size, tree in rows:
                if tree is None:
                    out.append(Change(seq, doc_id, rev, bool(flags & DELETED), size))
                    continue
                held = None if key is None else _held_by(tree, key)
                if not all_leaves or b"],[" not in tree:
                    # Only the current revision, or a one-node tree (nodes are joined by
                    # "],["): one leaf.
                    out.append(Change(seq, doc_id, rev, bool(flags & DELETED), size, held))
                    continue
                row = self._row(doc_id)  # several nodes: the whole tree, current body too
                assert row is not None
                for leaf in row.rev_tree().leaf_revisions():
                    size = len(leaf.body or b"")
                    out.append(Change(seq, doc_id, leaf.rev_id, leaf.deleted, size, held))
        return out

    @property
    def last_sequence(self) -> int:
        with self.database._read():
            (seq,) = self._conn.execute(
                "SELECT last_seq FROM collections WHERE id = ?", (self.id,)
            ).fetchone()
        return int(seq)

    def current_revisions(self, doc_ids: Sequence[str]) -> dict[str, tuple[str, bool]]:
        """{doc_id: (current revID, deleted)} for the documents that exist."""
        with self.database._read():
            rows = self._rows(doc_ids)
        return {d: (r.rev, r.deleted) for d, r in rows.items()}

    def revs_diff(self, doc_id: str, rev_ids: Sequence[str]) -> tuple[list[str], list[str]]:
        """(missing revIDs, revIDs we have that may be ancestors of the missing ones)."""
        with self.database._read():
            row = self._row(doc_id)
        if row is None:
            return list(rev_ids), []
        tree = row.rev_tree()
        missing = [r for r in rev_ids if r not in tree]
        if not missing:
            return [], []
        top = max(generation(r) for r in missing if is_valid_rev_id(r)) if missing else 0
        ancestors = _ancestors(tree, top, require_body=False, limit=MAX_POSSIBLE_ANCESTORS)
        return missing, ancestors

    def find_ancestors(
        self,
        items: Sequence[tuple[str, str]],
        *,
        require_bodies: bool = False,
        limit: int = MAX_POSSIBLE_ANCESTORS,
    ) -> list[list[str] | None]:
        """For each (doc_id, revID): None if we have it, else our possible ancestors of it."""
        with self.database._read():
            rows = self._rows(doc_id for doc_id, _ in items)
        out: list[list[str] | None] = []
        trees: dict[str, RevTree] = {}
        for doc_id, rev_id in items:
            row = rows.get(doc_id)
            if row is None:
                out.append([])
                continue
            if row.rev == rev_id:
                out.append(None)
                continue
            tree = trees.get(doc_id) or trees.setdefault(doc_id, row.rev_tree())
            if rev_id in tree:
                out.append(None)
            else:
                gen = generation(rev_id) if is_valid_rev_id(rev_id) else 1 << 30
                out.append(_ancestors(tree, gen, require_body=require_bodies, limit=limit))
        return out

    def read_revisions(
        self,
        items: Sequence[tuple[str, str | None]],
        *,
        max_history: int = 20,
        known: Mapping[str, Sequence[str]] | None = None,
    ) -> list[RevisionData | None]:
        """Read revisions to send; None where the revision or its body is gone.

        History stops after the first revID the peer listed as known for that document.
        """
        with self.database._read():
            rows = self._rows(doc_id for doc_id, _ in items)
        out: list[RevisionData | None] = []
        for doc_id, rev_id in items:
            row = rows.get(doc_id)
            out.append(
                None
                if row is None
                else _revision_data(doc_id, rev_id, row, max_history, (known or {}).get(doc_id, ()))
            )
        return out

    def read_revision(
        self, doc_id: str, rev_id: str | None = None, *, max_history: int = 20
    ) -> RevisionData | None:
        return self.read_revisions([(doc_id, rev_id)], max_history=max_history)[0]

    def revision_body(self, doc_id: str, rev_id: str) -> bytes | None:
        """The stored body of any revision (None if unknown or pruned): a delta source."""
        with self.database._read():
            row = self._row(doc_id)
        if row is None:
            return None
        if row.rev == rev_id:
            return row.body
        tree = row.rev_tree()
        index = tree.find(rev_id)
        return None if index is None else tree.revs[index].body

    def conflicted_ids(self) -> list[str]:
        """Documents with two or more open branches, at least one live (to be resolved)."""
        with self.database._read():
            rows = self._conn.execute(
                f"SELECT doc_id FROM {self._table} WHERE flags & {CONFLICTED} ORDER BY seq"
            )
            return [r[0] for r in rows]

    def open_leaves(self, doc_id: str) -> list[RevisionData]:
        """The open branch ends of a document, current first (empty if it is unknown)."""
        with self.database._read():
            row = self._row(doc_id)
        if row is None:
            return []
        tree = row.rev_tree()
        out = []
        for rev_id in tree.open_leaves():
            index = tree.find(rev_id)
            assert index is not None
            rev = tree.revs[index]
            out.append(
                RevisionData(
                    doc_id, rev_id, rev.deleted, rev.body or b"{}", tree.history(index)[1:], row.seq
                )
            )
        return out

    def remote_revisions(self, doc_ids: Sequence[str], remote_id: int) -> dict[str, str]:
        """{doc_id: revID the remote is known to have} for documents with a mark."""
        key = str(remote_id)
        out = {}
        with self.database._read():
            for doc_id, tree in self._select_in("doc_id, tree", doc_ids, "tree IS NOT NULL AND "):
                rev = _held_by(tree, key)
                if rev is not None:
                    out[doc_id] = rev
        return out

    def remote_revision(self, doc_id: str, remote_id: int) -> str | None:
        with self.database._read():
            row = self._row(doc_id)
        if row is None or row.tree is None:
            return None
        return row.rev_tree().remotes.get(remote_id)

    # -- writing ----------------------------------------------------------------------

    def insert_revisions(
        self, batch: Sequence[RevisionInsert], *, remote_id: int | None = None
    ) -> list[InsertResult]:
        """Store foreign revisions (with their history) in one transaction."""
        prepared = [(item, _body_bytes(item.body)) for item in batch]
        results: list[InsertResult] = []
        with self.database._write() as txn:
            rows = self._rows(item.doc_id for item in batch)
            trees: dict[str, RevTree] = {}
            # New documents' rows, inserted together (executemany) at the end, or before
            # another revision of one of them needs its row in the table.
            new_rows: list[tuple[Any, ...]] = []
            for item, body in prepared:
                if not is_valid_rev_id(item.rev_id):
                    raise InvalidBodyError(f"malformed revision ID {item.rev_id!r}")
                row = rows.get(item.doc_id)
                if row is None and not item.history and item.doc_id not in trees:
                    # A new document with one revision: no tree to build (the common case).
                    row = self._new_row(txn, item, body, remote_id)
                    rows[item.doc_id] = row
                    new_rows.append((row.seq, item.doc_id, *row[1:]))
                    results.append(
                        InsertResult(
                            item.doc_id,
                            item.rev_id,
                            True,
                            item.rev_id,
                            item.deleted,
                            (),
                            row.seq,
                            open_leaves=(item.rev_id,),
                        )
                    )
                    continue
                if new_rows and row is not None and row.seq >= new_rows[0][0]:
                    # Another revision of a document inserted above: its row must exist.
                    self._conn.executemany(self._insert_sql, new_rows)
                    new_rows.clear()
                tree = trees.get(item.doc_id)
                if tree is None and row is not None:
                    tree = trees[item.doc_id] = row.rev_tree()
                exists = row is not None or tree is not None
                if item.no_conflicts and tree is not None and item.rev_id not in tree:
                    current = tree.revs[tree.current()]
                    if current.rev_id not in item.history:
                        results.append(
                            InsertResult(
                                item.doc_id,
                                item.rev_id,
                                False,
                                current.rev_id,
                                current.deleted,
                                tuple(tree.conflicts()),
                                0,
                                rejected=True,
                            )
                        )
                        continue
                if tree is None:
                    tree = trees[item.doc_id] = RevTree([])
                _, added = tree.insert_history(item.rev_id, list(item.history), item.deleted, body)
                if remote_id is not None:
                    tree.mark_remote(remote_id, item.rev_id)
                seq, cur = self._write_tree(txn, item.doc_id, tree, exists, bump=added)
                current = tree.revs[cur]
                results.append(
                    InsertResult(
                        item.doc_id,
                        item.rev_id,
                        added,
                        current.rev_id,
                        current.deleted,
                        tuple(tree.conflicts()),
                        seq,
                        open_leaves=tuple(tree.open_leaves()),
                        conflicted=tree.in_conflict(),
                    )
                )
            if new_rows:
                self._conn.executemany(self._insert_sql, new_rows)
        return results

    def _new_row(self, txn: _Txn, item: RevisionInsert, body: bytes, remote_id: int | None) -> Row:
        """The row of a new document's first revision, with its sequence (not yet written)."""
        seq = self.database._next_seq(txn, self)
        txn.record(self, item.doc_id)
        marked = (
            None if remote_id is None else RevTree.encode_lone(item.rev_id, item.deleted, remote_id)
        )
        return Row(seq, item.rev_id, DELETED if item.deleted else 0, body, marked)

    def insert_revision(
        self,
        doc_id: str,
        rev_id: str,
        history: Sequence[str],
        body: bytes | Mapping[str, Any],
        deleted: bool = False,
        *,
        remote_id: int | None = None,
    ) -> InsertResult:
        return self.insert_revisions(
            [RevisionInsert(doc_id, rev_id, history, body, deleted)], remote_id=remote_id
        )[0]

    def mark_remote_revisions(self, remote_id: int, items: Sequence[tuple[str, str]]) -> None:
        """Record that a remote has these revisions (keeps their bodies as delta sources)."""
        key = str(remote_id)
        revs_of: dict[str, list[str]] = {}
        for doc_id, rev_id in items:
            revs_of.setdefault(doc_id, []).append(rev_id)
        with self.database._write() as txn:
            if len(revs_of) == len(items) and self._mark_current_sql:
                # Usually each is a current revision with no tree or a one-node tree: SQLite
                # writes the marks itself, with no row read into Python. Rows that are not
                # (rowcount tells), or an SQLite without JSON functions, take the general
                # path below.
                try:
                    done = self._conn.executemany(
                        self._mark_current_sql, [(key, doc_id, rev) for doc_id, rev in items]
                    ).rowcount
                except sqlite3.OperationalError as exc:
                    if "no such function" not in str(exc):
                        raise
                    self._mark_current_sql = ""  # an SQLite without JSON: Python does it
                    done = -1
                if done == len(items):
                    return
            # The general path: trees decoded (rows marked just above are found marked).
            rows = self._rows(revs_of)
            for doc_id, row in rows.items():
                tree = row.rev_tree()
                changed = False
                for rev_id in revs_of[doc_id]:
                    if tree.remotes.get(remote_id) != rev_id and rev_id in tree:
                        tree.mark_remote(remote_id, rev_id)
                        changed = True
                if changed:
                    self._write_tree(txn, doc_id, tree, True, bump=False)


def _held_by(tree: bytes, remote_key: str) -> str | None:
    """The revision an encoded tree marks as held by a remote: only the marks are read."""
    rev: str | None = orjson.loads(tree).get("m", {}).get(remote_key)
    return rev


def _body_bytes(body: bytes | Mapping[str, Any]) -> bytes:
    if type(body) is bytes and body[:1] == b"{":  # canonical JSON from the receiver
        return body
    if isinstance(body, (bytes, bytearray, memoryview)):
        data = bytes(body)
        if not data.lstrip().startswith(b"{"):
            raise InvalidBodyError("a revision body must be a JSON object")
        return data
    return canonical_json(dict(body))


def _ancestors(tree: RevTree, below_gen: int, *, require_body: bool, limit: int) -> list[str]:
    candidates = [
        rev.rev_id
        for rev in tree.revs
        if generation(rev.rev_id) < below_gen and (rev.body is not None or not require_body)
    ]
    candidates.sort(key=generation, reverse=True)
    return candidates[:limit]


def _revision_data(
    doc_id: str, rev_id: str | None, row: Row, max_history: int, known: Sequence[str]
) -> RevisionData | None:
    if rev_id is None or rev_id == row.rev:
        if row.tree is None or b"],[" not in row.tree:  # the only node: no history
            return RevisionData(doc_id, row.rev, row.deleted, row.body, [], row.seq)
        rev_id = row.rev
    tree = row.rev_tree()
    index = tree.find(rev_id)
    if index is None or tree.revs[index].body is None:
        return None
    rev = tree.revs[index]
    history: list[str] = []
    stop = set(known)
    parent = rev.parent
    while parent != -1 and len(history) < max_history:
        ancestor = tree.revs[parent]
        history.append(ancestor.rev_id)
        if ancestor.rev_id in stop:
            break
        parent = ancestor.parent
    body = rev.body
    assert body is not None
    return RevisionData(doc_id, rev.rev_id, rev.deleted, body, history, row.seq)
