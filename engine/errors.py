"""The exception tree shared by the whole engine.

Every error says what went wrong and what the user can do about it::

    PeerbaseError
     ├── StoreError                       engine.store
     │    ├── NotFoundError               (also LookupError)
     │    ├── ConflictError
     │    ├── InvalidNameError            (also ValueError)
     │    ├── InvalidDocumentIDError      (also ValueError)
     │    ├── InvalidBodyError            (also ValueError)
     │    ├── DatabaseClosedError
     │    ├── DatabaseBusyError
     │    ├── CorruptDatabaseError
     │    ├── DiskFullError
     │    └── BlobError
     └── (subpackages hang their own subtrees here, e.g. engine.blip.BlipError)
"""

from __future__ import annotations

__all__ = [
    "BlobError",
    "ConflictError",
    "CorruptDatabaseError",
    "DatabaseBusyError",
    "DatabaseClosedError",
    "DiskFullError",
    "InvalidBodyError",
    "InvalidDocumentIDError",
    "InvalidNameError",
    "NotFoundError",
    "PeerbaseError",
    "StoreError",
]


class PeerbaseError(Exception):
    """Base of every error the engine raises on purpose."""

    #: A short hint telling the user what to do about it.
    hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text} ({self.hint})" if self.hint else text


class StoreError(PeerbaseError):
    """Something went wrong in the document store."""


class NotFoundError(StoreError, LookupError):
    """A document, revision, collection or blob does not exist."""

    hint = "check the name or ID"


class ConflictError(StoreError):
    """A save lost a race with another writer (FAIL_ON_CONFLICT)."""

    hint = "re-read the document, reapply the change and save again"


class InvalidNameError(StoreError, ValueError):
    """A database, scope or collection name breaks Couchbase Lite's naming rules."""

    hint = "use 1-251 characters of A-Z a-z 0-9 _ - %, not starting with _ or %"


class InvalidDocumentIDError(StoreError, ValueError):
    """A document ID is empty or longer than 250 bytes of UTF-8."""

    hint = "use a non-empty ID of at most 250 bytes of UTF-8"


class InvalidBodyError(StoreError, ValueError):
    """A document body cannot be stored as JSON."""

    hint = "use only dicts with str keys, lists, str, int, float, bool, None and Blob"


class DatabaseClosedError(StoreError):
    """The database was used after close() or delete()."""

    hint = "open the database again"


class DatabaseBusyError(StoreError):
    """Another process holds the database lock for too long."""

    hint = "close the other program using this database, or try again"


class CorruptDatabaseError(StoreError):
    """The database file is not a valid Peerbase database."""

    hint = "restore the database directory from a backup or re-sync it from a peer"


class DiskFullError(StoreError):
    """The disk is full; the write was rolled back and nothing was lost."""

    hint = "free disk space and try again"


class BlobError(StoreError):
    """A blob could not be stored or read (missing content, digest mismatch)."""
