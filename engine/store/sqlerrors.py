"""Translate sqlite3 exceptions into the engine's error tree."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from engine.errors import (
    CorruptDatabaseError,
    DatabaseBusyError,
    DiskFullError,
    StoreError,
)

_BUSY = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
_CORRUPT = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}


def translate(exc: sqlite3.Error, path: object) -> StoreError:
    """The StoreError matching an sqlite3 exception."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(exc)
    if primary in _BUSY or "locked" in text or "busy" in text:
        return DatabaseBusyError(f"database {path} is locked by another connection")
    if primary == sqlite3.SQLITE_FULL or "disk is full" in text:
        return DiskFullError(f"disk full while writing database {path}; nothing was saved")
    if primary in _CORRUPT or "not a database" in text or "malformed" in text:
        return CorruptDatabaseError(f"database file {path} is corrupt: {text}")
    return StoreError(f"database {path}: {text}")


@contextmanager
def sqlite_errors(path: object) -> Iterator[None]:
    """Re-raise sqlite3 errors inside the block as StoreErrors."""
    try:
        yield
    except sqlite3.Error as exc:
        raise translate(exc, path) from exc
