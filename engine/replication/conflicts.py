"""Conflict resolution as Couchbase Lite 3.x does it on the active (pulling) side."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from engine.store import Document
from engine.store.revid import rev_sort_key

__all__ = ["Conflict", "ConflictResolver", "default_resolver"]


@dataclass(frozen=True, slots=True)
class Conflict:
    """Two branches of one document: ours (local) and the one just pulled (remote).

    A side is None when it is deleted.
    """

    document_id: str
    local_document: Document | None
    remote_document: Document | None
    local_rev_id: str
    remote_rev_id: str


#: Returns the winning document (local, remote, or a new merge) or None to delete it.
ConflictResolver = Callable[[Conflict], Document | Awaitable[Document | None] | None]


def default_resolver(conflict: Conflict) -> Document | None:
    """Couchbase Lite's default: a deletion wins; else the higher generation; else revID."""
    if conflict.remote_document is None or conflict.local_document is None:
        return None
    if rev_sort_key(conflict.local_rev_id) > rev_sort_key(conflict.remote_rev_id):
        return conflict.local_document
    return conflict.remote_document
