"""Validation of database, scope and collection names and of document IDs."""

from __future__ import annotations

import re

from engine.errors import InvalidDocumentIDError, InvalidNameError

DEFAULT_NAME = "_default"
MAX_DOC_ID_BYTES = 250
_NAME_RE = re.compile(r"[A-Za-z0-9_%-]{1,251}\Z")


def check_collection_name(name: str, *, what: str = "collection") -> str:
    """Return `name` if it follows Couchbase Lite's scope/collection naming rules."""
    if name == DEFAULT_NAME:
        return name
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidNameError(f"invalid {what} name {name!r}")
    if name[0] in "_%":
        raise InvalidNameError(f"invalid {what} name {name!r}: must not start with _ or %")
    return name


def check_database_name(name: str) -> str:
    """Return `name` if it can name a database directory."""
    if (
        not isinstance(name, str)
        or not name
        or len(name.encode()) > 240
        or name.startswith(".")
        or any(c in name for c in "/\\:\0")
    ):
        raise InvalidNameError(
            f"invalid database name {name!r}",
            hint="use a non-empty name without / \\ : or a leading dot",
        )
    return name


def check_doc_id(doc_id: str) -> str:
    """Return `doc_id` if it is a valid document ID."""
    if type(doc_id) is str and 0 < len(doc_id) <= MAX_DOC_ID_BYTES // 4:
        return doc_id  # fast path: short enough whatever its encoding
    if not isinstance(doc_id, str) or not doc_id:
        raise InvalidDocumentIDError(f"invalid document ID {doc_id!r}: empty or not a string")
    if len(doc_id) * 4 > MAX_DOC_ID_BYTES and len(doc_id.encode()) > MAX_DOC_ID_BYTES:
        raise InvalidDocumentIDError(
            f"invalid document ID {doc_id[:40]!r}...: longer than {MAX_DOC_ID_BYTES} bytes"
        )
    return doc_id


def split_full_name(full_name: str) -> tuple[str, str]:
    """Split ``scope.collection`` (or a bare collection name) into (scope, name)."""
    scope, dot, name = full_name.partition(".")
    if not dot:
        return DEFAULT_NAME, check_collection_name(full_name)
    return check_collection_name(scope, what="scope"), check_collection_name(name)
