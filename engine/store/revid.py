"""Revision IDs (``<generation>-<hex digest>``), canonical JSON and the winner order."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

from engine.errors import InvalidBodyError


def canonical_json(properties: Any) -> bytes:
    """Encode `properties` as canonical JSON (sorted keys, no whitespace)."""
    try:
        return orjson.dumps(properties, option=orjson.OPT_SORT_KEYS)
    except TypeError as exc:
        raise InvalidBodyError(f"document body is not JSON-serialisable: {exc}") from None


def generation(rev_id: str) -> int:
    """The generation number of a revID; raises ValueError if malformed."""
    gen, dash, digest = rev_id.partition("-")
    if not dash or not digest or not gen.isdigit():
        raise ValueError(f"malformed revision ID {rev_id!r}")
    return int(gen)


#: ``N-digest``: N >= 1 in ASCII digits (leading zeros allowed), any non-empty digest.
_REV_ID = re.compile(r"0*[1-9][0-9]*-.+", re.ASCII | re.DOTALL)


def is_valid_rev_id(rev_id: object) -> bool:
    """True if `rev_id` looks like ``N-digest`` with N >= 1."""
    return isinstance(rev_id, str) and len(rev_id) <= 300 and _REV_ID.fullmatch(rev_id) is not None


def new_rev_id(parent_rev_id: str | None, deleted: bool, body_json: bytes) -> str:
    """The revID of a new revision: SHA-1 over parent revID, deleted flag and body.

    The same edit of the same parent always yields the same revID, as in Couchbase Lite.
    """
    parent = parent_rev_id.encode() if parent_rev_id else b""
    prefix = bytes((len(parent) & 0xFF,)) + parent + (b"\x01" if deleted else b"\x00")
    digest = hashlib.sha1(prefix + body_json, usedforsecurity=False).hexdigest()
    gen = generation(parent_rev_id) + 1 if parent_rev_id else 1
    return f"{gen}-{digest}"


def rev_sort_key(rev_id: str) -> tuple[int, str]:
    """Order revIDs by generation, then by digest (the CouchDB order)."""
    gen, _, digest = rev_id.partition("-")
    return (int(gen) if gen.isdigit() else 0, digest)


def winner_key(rev_id: str, deleted: bool) -> tuple[bool, int, str]:
    """Sort key of the current-revision choice: live beats deleted, then generation, digest."""
    gen, digest = rev_sort_key(rev_id)
    return (not deleted, gen, digest)
