"""Pure encoders/decoders of replication message bodies and properties (no I/O).

Bodies follow replication-protocol.adoc (protocol 3) and what Couchbase Lite 3.2
sends on the wire (see shared/vectors/cbl-3.2.4-sessions).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from engine.replication.errors import ProtocolError
from engine.store.revid import is_valid_rev_id

__all__ = [
    "ChangeEntry",
    "ProposedChange",
    "RevMessage",
    "check_doc_id",
    "check_rev",
    "decode_changes",
    "decode_changes_reply",
    "decode_proposals",
    "decode_propose_reply",
    "encode_changes",
    "encode_changes_reply",
    "encode_proposals",
    "encode_propose_reply",
    "flag",
    "parse_history",
]

TRUE_VALUES = frozenset({"true", "1", "yes"})


def flag(properties: Mapping[str, str], key: str) -> bool:
    """A boolean property as Couchbase Lite writes them ("true" or "1")."""
    return properties.get(key, "").lower() in TRUE_VALUES


def _json(body: bytes, what: str) -> Any:
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"{what} body is not JSON: {exc}", code=400) from None


def check_doc_id(value: Any, what: str) -> str:
    if type(value) is str and 0 < len(value) <= 62:  # at most 4 UTF-8 bytes a character
        return value
    if not isinstance(value, str) or not value or len(value.encode()) > 250:
        raise ProtocolError(f"{what}: invalid document ID {value!r}", code=400)
    return value


def check_rev(value: Any, what: str) -> str:
    if not is_valid_rev_id(value):
        raise ProtocolError(f"{what}: invalid revision ID {value!r}", code=400)
    return str(value)


@dataclass(slots=True)
class ChangeEntry:
    """One item of a `changes` message: ``[sequence, docID, revID, deleted, bodySize]``."""

    sequence: Any
    doc_id: str
    rev_id: str
    deleted: bool = False
    body_size: int = 0


def encode_changes(entries: Sequence[ChangeEntry]) -> bytes:
    return orjson.dumps(
        [[e.sequence, e.doc_id, e.rev_id, 1 if e.deleted else 0, e.body_size] for e in entries]
    )


def decode_changes(body: bytes) -> list[ChangeEntry]:
    data = _json(body, "changes")
    if data is None:
        return []
    if not isinstance(data, list):
        raise ProtocolError("changes body must be a JSON array", code=400)
    out = []
    for item in data:
        if not isinstance(item, list) or len(item) < 3:
            raise ProtocolError(f"malformed changes entry {item!r}", code=400)
        deleted = bool(item[3]) if len(item) > 3 else False
        size = item[4] if len(item) > 4 and isinstance(item[4], int) else 0
        out.append(
            ChangeEntry(
                item[0],
                check_doc_id(item[1], "changes"),
                check_rev(item[2], "changes"),
                deleted,
                size,
            )
        )
    return out


def encode_changes_reply(wants: Sequence[Sequence[str] | None]) -> bytes:
    """Each entry: known ancestors (a wanted revision) or None (not wanted, sent as 0)."""
    items: list[Any] = [list(w) if w is not None else 0 for w in wants]
    while items and items[-1] == 0:
        items.pop()
    return orjson.dumps(items)


def decode_changes_reply(body: bytes, count: int) -> list[list[str] | None]:
    data = _json(body, "changes reply")
    data = [] if data is None else data
    if not isinstance(data, list) or len(data) > count:
        raise ProtocolError("changes reply must be an array no longer than the request", code=400)
    out: list[list[str] | None] = []
    for item in data:
        if item is None or item == 0:
            out.append(None)
        elif isinstance(item, list) and all(isinstance(r, str) for r in item):
            out.append(list(item))
        else:
            raise ProtocolError(f"malformed changes reply entry {item!r}", code=400)
    out.extend([None] * (count - len(out)))
    return out


@dataclass(slots=True)
class ProposedChange:
    """One item of `proposeChanges`: ``[docID, revID, serverRevID, bodySize]``."""

    doc_id: str
    rev_id: str
    server_rev_id: str = ""
    body_size: int = 0


def encode_proposals(entries: Sequence[ProposedChange]) -> bytes:
    return orjson.dumps([[e.doc_id, e.rev_id, e.server_rev_id, e.body_size] for e in entries])


def decode_proposals(body: bytes) -> list[ProposedChange]:
    data = _json(body, "proposeChanges")
    if data is None:
        return []
    if not isinstance(data, list):
        raise ProtocolError("proposeChanges body must be a JSON array", code=400)
    out = []
    for item in data:
        if not isinstance(item, list) or len(item) < 2:
            raise ProtocolError(f"malformed proposeChanges entry {item!r}", code=400)
        server = item[2] if len(item) > 2 and isinstance(item[2], str) else ""
        if server:
            check_rev(server, "proposeChanges")
        size = item[3] if len(item) > 3 and isinstance(item[3], int) else 0
        out.append(
            ProposedChange(
                check_doc_id(item[0], "proposeChanges"),
                check_rev(item[1], "proposeChanges"),
                server,
                size,
            )
        )
    return out


#: A proposeChanges verdict: 0 (send it), 304 (already have it), 409 (conflict).
Verdict = tuple[int, str | None]


def encode_propose_reply(verdicts: Sequence[Verdict], *, include_rev: bool) -> bytes:
    items: list[Any] = []
    for status, rev in verdicts:
        if status == 409 and include_rev and rev:
            items.append({"status": 409, "rev": rev})
        else:
            items.append(status)
    while items and items[-1] == 0:
        items.pop()
    return orjson.dumps(items)


def decode_propose_reply(body: bytes, count: int) -> list[Verdict]:
    data = _json(body, "proposeChanges reply")
    data = [] if data is None else data
    if not isinstance(data, list) or len(data) > count:
        raise ProtocolError("proposeChanges reply must be an array", code=400)
    out: list[Verdict] = []
    for item in data:
        if isinstance(item, int):
            out.append((item, None))
        elif item is None:
            out.append((0, None))
        elif isinstance(item, dict) and isinstance(item.get("status"), int):
            rev = item.get("rev")
            out.append((item["status"], rev if isinstance(rev, str) else None))
        else:
            raise ProtocolError(f"malformed proposeChanges reply entry {item!r}", code=400)
    out.extend([(0, None)] * (count - len(out)))
    return out


def parse_history(value: str) -> list[str]:
    """A `history` property: revIDs separated by commas (optional spaces)."""
    return [r.strip() for r in value.split(",") if r.strip()] if value else []


@dataclass(slots=True)
class RevMessage:
    """The properties of a `rev` message."""

    doc_id: str
    rev_id: str
    history: tuple[str, ...] = ()
    deleted: bool = False
    sequence: str | None = None
    delta_src: str | None = None
    no_conflicts: bool = False
    replaced_rev: str | None = None

    def properties(self, collection: int | None = None) -> dict[str, str]:
        props = {"id": self.doc_id, "rev": self.rev_id}
        if collection is not None:
            props = {"collection": str(collection), **props}
        if self.deleted:
            props["deleted"] = "1"
        if self.sequence is not None:
            props["sequence"] = self.sequence
        if self.history:
            props["history"] = ",".join(self.history)
        if self.delta_src:
            props["deltaSrc"] = self.delta_src
        if self.no_conflicts:
            props["noconflicts"] = "1"
        if self.replaced_rev:
            props["replacedRev"] = self.replaced_rev
        return props

    @classmethod
    def parse(cls, props: Mapping[str, str]) -> RevMessage:
        doc_id = check_doc_id(props.get("id"), "rev")
        rev_id = check_rev(props.get("rev"), "rev")
        history = tuple(parse_history(props.get("history", "")))
        for rev in history:
            check_rev(rev, "rev history")
        delta = props.get("deltaSrc") or None
        if delta:
            check_rev(delta, "rev deltaSrc")
        return cls(
            doc_id,
            rev_id,
            history,
            flag(props, "deleted"),
            props.get("sequence"),
            delta,
            flag(props, "noconflicts"),
            props.get("replacedRev") or None,
        )
