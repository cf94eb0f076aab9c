"""A document's revision tree: pure data, no SQLite.

Nodes live in a list; each keeps its parent's index (-1 for a root). Leaves are the
branch ends; the current revision is the winning leaf (live beats deleted, then the
higher generation, then the greater digest). Only leaves and revisions some remote is
known to have keep their bodies (the latter serve as delta-sync sources).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from engine.store.revid import winner_key

NO_PARENT = -1

#: Body of the tombstone that closes a branch which lost a conflict. It is an ordinary
#: revision (it replicates), recognisable on every peer, so all of them agree the branch
#: is closed and not a deletion racing an edit.
CLOSE_BODY = b'{"closedConflict":true}'


@dataclass(slots=True)
class Revision:
    """One node of a revision tree."""

    rev_id: str
    parent: int
    deleted: bool
    body: bytes | None  # canonical JSON, or None once pruned
    closed: bool = False  # a CLOSE_BODY tombstone ending a branch that lost a conflict


class RevTree:
    """The revisions of one document and which revision each remote is known to have."""

    __slots__ = ("_index", "remotes", "revs")

    def __init__(self, revs: list[Revision], remotes: dict[int, str] | None = None) -> None:
        self.revs = revs
        self.remotes: dict[int, str] = remotes or {}
        self._index = {rev.rev_id: i for i, rev in enumerate(revs)}

    # -- encoding -------------------------------------------------------------------------

    @classmethod
    def single(cls, rev_id: str, deleted: bool, body: bytes) -> RevTree:
        return cls([Revision(rev_id, NO_PARENT, deleted, body)])

    @classmethod
    def decode(cls, current: str, deleted: bool, body: bytes, blob: bytes | None) -> RevTree:
        """Rebuild a tree from a stored row (the current body is stored outside the blob)."""
        if blob is None:
            return cls.single(current, deleted, body)
        data = orjson.loads(blob)
        revs = [
            Revision(r, p, bool(f & 1), b.encode() if b is not None else None, bool(f & 2))
            for r, p, f, b in data["r"]
        ]
        tree = cls(revs, {int(k): v for k, v in data.get("m", {}).items()})
        tree.revs[tree._index[current]].body = body
        return tree

    @staticmethod
    def encode_lone(rev_id: str, deleted: bool, remote_id: int) -> bytes:
        """`encode` of a lone revision marked as held by one remote, without building it."""
        rev = orjson.dumps(rev_id)
        return b'{"r":[[%b,-1,%d,null]],"m":{"%d":%b}}' % (rev, deleted, remote_id, rev)

    def encode(self, current: int) -> bytes | None:
        """Serialise all but the current body; None for a lone revision with no remotes."""
        if len(self.revs) == 1 and not self.remotes:
            return None
        nodes: list[list[Any]] = []
        for i, rev in enumerate(self.revs):
            body = None if i == current or rev.body is None else rev.body.decode()
            flags = (1 if rev.deleted else 0) | (2 if rev.closed else 0)
            nodes.append([rev.rev_id, rev.parent, flags, body])
        data: dict[str, Any] = {"r": nodes}
        if self.remotes:
            data["m"] = {str(k): v for k, v in self.remotes.items()}
        return orjson.dumps(data)

    # -- queries --------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.revs)

    def __contains__(self, rev_id: object) -> bool:
        return rev_id in self._index

    def find(self, rev_id: str) -> int | None:
        return self._index.get(rev_id)

    def leaves(self) -> list[int]:
        parents = {rev.parent for rev in self.revs}
        return [i for i in range(len(self.revs)) if i not in parents]

    def current(self) -> int:
        """Index of the winning leaf (closed branches rank last)."""
        revs = self.revs
        return max(
            self.leaves(),
            key=lambda i: (not revs[i].closed, winner_key(revs[i].rev_id, revs[i].deleted)),
        )

    def conflicts(self) -> list[str]:
        """RevIDs of live leaves other than the current revision (open conflicts)."""
        cur = self.current()
        return [self.revs[i].rev_id for i in self.leaves() if i != cur and not self.revs[i].deleted]

    def open_leaves(self) -> list[str]:
        """RevIDs of leaves not closed by a conflict resolution, current first."""
        cur = self.current()
        rest = [self.revs[i].rev_id for i in self.leaves() if i != cur and not self.revs[i].closed]
        return [self.revs[cur].rev_id, *rest] if not self.revs[cur].closed else rest

    def in_conflict(self) -> bool:
        """Two or more open branches, at least one of them live."""
        open_leaves = [i for i in self.leaves() if not self.revs[i].closed]
        return len(open_leaves) > 1 and any(not self.revs[i].deleted for i in open_leaves)

    def leaf_revisions(self) -> list[Revision]:
        """Every leaf, current first (what a peer needs to converge on the same tree)."""
        cur = self.current()
        return [self.revs[cur]] + [self.revs[i] for i in self.leaves() if i != cur]

    def history(self, index: int, limit: int | None = None) -> list[str]:
        """RevIDs from `index` back to its root, newest first."""
        out: list[str] = []
        while index != NO_PARENT and (limit is None or len(out) < limit):
            rev = self.revs[index]
            out.append(rev.rev_id)
            index = rev.parent
        return out

    def is_leaf(self, index: int) -> bool:
        return all(rev.parent != index for rev in self.revs)

    # -- changes --------------------------------------------------------------------------

    def add_child(
        self, parent: int, rev_id: str, deleted: bool, body: bytes | None, closed: bool = False
    ) -> int:
        """Append a revision under `parent` (NO_PARENT for a new root)."""
        self.revs.append(Revision(rev_id, parent, deleted, body, closed))
        self._index[rev_id] = len(self.revs) - 1
        return len(self.revs) - 1

    def insert_history(
        self, rev_id: str, history: list[str], deleted: bool, body: bytes | None
    ) -> tuple[int, bool]:
        """Insert `rev_id` with its ancestors (newest first); returns (index, added)."""
        existing = self._index.get(rev_id)
        if existing is not None:
            return existing, False
        anchor = NO_PARENT
        missing: list[str] = []
        for ancestor in history:
            found = self._index.get(ancestor)
            if found is not None:
                anchor = found
                break
            missing.append(ancestor)
        for ancestor in reversed(missing):
            anchor = self.add_child(anchor, ancestor, False, None)
        closed = deleted and body == CLOSE_BODY
        return self.add_child(anchor, rev_id, deleted, body, closed), True

    def mark_remote(self, remote_id: int, rev_id: str) -> None:
        """Remember that remote `remote_id` has `rev_id` (its body is kept for deltas)."""
        if rev_id in self._index:
            self.remotes[remote_id] = rev_id

    def prune(self, max_depth: int) -> None:
        """Drop revisions `max_depth` or more steps above any leaf, and stale bodies.

        Afterwards no leaf's history is longer than `max_depth`.
        """
        leaves = self.leaves()
        far: set[int] = set()
        for leaf in leaves:
            i, d = leaf, 0
            while i != NO_PARENT:
                if d >= max_depth:
                    far.add(i)
                i, d = self.revs[i].parent, d + 1
        # Leaves, revisions a remote has, and the current revision's parent keep their
        # bodies: the last two are what a peer most likely has, i.e. delta sources.
        keep_bodies = set(leaves) | {self._index[r] for r in self.remotes.values()}
        current_parent = self.revs[self.current()].parent
        if current_parent != NO_PARENT:
            keep_bodies.add(current_parent)
        for i, rev in enumerate(self.revs):
            if i not in keep_bodies:
                rev.body = None
        if not far:
            return
        survivors = [i for i in range(len(self.revs)) if i not in far]
        remap = {old: new for new, old in enumerate(survivors)}
        revs = []
        for old in survivors:
            rev = self.revs[old]
            rev.parent = remap.get(rev.parent, NO_PARENT)
            revs.append(rev)
        self.revs = revs
        self._index = {rev.rev_id: i for i, rev in enumerate(revs)}
        self.remotes = {k: v for k, v in self.remotes.items() if v in self._index}
