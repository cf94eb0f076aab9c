"""The `revs` message: many revisions in one request, a Peerbase extension (pure codec).

Every `rev` of the standard protocol is one BLIP request and one reply. In pure Python the
per-message cost (WebSocket frame, BLIP frame, properties, a handler, a reply) is several
times the cost of storing the document, so two Peerbase peers send plain revisions in
batches instead. The standard `rev` is still used for deltas, large bodies, and with any
peer that did not announce the extension (Couchbase Lite never sees a `revs` message):

- a passive Peerbase peer lists ``rev-batches`` in its upgrade response's `Server` header;
- an active Peerbase peer asks for batches with ``revBatches: true`` on `subChanges`.

Request (properties: `collection` as for `rev`), body a JSON array of entries::

    [[docID, revID, [history revIDs...], sequence, flags, body], ...]

with `history` as in `rev` (the ancestors, newest first), flags 1 = deleted,
2 = noconflicts, and `body` the revision's JSON object. The reply body is an array with
one status per entry: ``0`` when stored, or ``[code, "message"]`` (the codes a `rev`
error reply would carry: 409, 400, 500, 503, 507 ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from engine.replication.errors import ProtocolError
from engine.replication.messages import RevMessage, check_doc_id, check_rev

__all__ = [
    "PROFILE",
    "REQUEST_PROPERTY",
    "SERVER_FEATURE",
    "BatchEntry",
    "decode_batch",
    "decode_batch_reply",
    "encode_batch",
    "encode_batch_reply",
]

PROFILE = "revs"
#: The `subChanges` property by which an active Peerbase peer asks for `revs` messages.
REQUEST_PROPERTY = "revBatches"
#: The word in a passive Peerbase peer's `Server` header saying it takes `revs` messages.
SERVER_FEATURE = "rev-batches"

DELETED = 1
NO_CONFLICTS = 2

#: A status of the reply: 0 (stored) or (code, message).
Status = int | tuple[int, str]


@dataclass(slots=True)
class BatchEntry:
    """One revision of a `revs` message, to send: its body is the stored JSON bytes."""

    doc_id: str
    rev_id: str
    history: Sequence[str]
    sequence: int | str
    deleted: bool
    no_conflicts: bool
    body: bytes


def encode_batch(entries: Sequence[BatchEntry]) -> bytes:
    """The body of a `revs` request; bodies go in as they are (no decode and re-encode)."""
    fragment = orjson.Fragment
    return orjson.dumps(
        [
            [
                e.doc_id,
                e.rev_id,
                list(e.history),
                e.sequence,
                (DELETED if e.deleted else 0) | (NO_CONFLICTS if e.no_conflicts else 0),
                fragment(e.body or b"{}"),
            ]
            for e in entries
        ]
    )


def decode_batch(body: bytes) -> list[tuple[RevMessage, dict[str, Any]]]:
    """The revisions of a `revs` request, as `rev` properties and decoded bodies.

    Raises ProtocolError (400) if anything in it is malformed: the whole batch is refused.
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"revs body is not JSON: {exc}", code=400) from None
    if not isinstance(data, list):
        raise ProtocolError("revs body must be an array", code=400)
    out: list[tuple[RevMessage, dict[str, Any]]] = []
    for item in data:
        if type(item) is not list or len(item) != 6:
            raise ProtocolError(f"malformed revs entry {str(item)[:80]!r}", code=400)
        doc_id, rev_id, history, sequence, flags, doc = item
        check_doc_id(doc_id, "revs")
        check_rev(rev_id, "revs")
        if type(history) is not list:
            raise ProtocolError(f"revs: history of {doc_id!r} must be an array", code=400)
        for rev in history:
            check_rev(rev, "revs history")
        if type(flags) is not int or type(doc) is not dict:
            raise ProtocolError(f"revs: malformed flags or body of {doc_id!r}", code=400)
        if type(sequence) is not int and type(sequence) is not str:
            raise ProtocolError(f"revs: malformed sequence of {doc_id!r}", code=400)
        out.append(
            (
                RevMessage(
                    doc_id,
                    rev_id,
                    tuple(history),
                    bool(flags & DELETED),
                    str(sequence),
                    None,
                    bool(flags & NO_CONFLICTS),
                ),
                doc,
            )
        )
    return out


def encode_batch_reply(statuses: Sequence[Status]) -> bytes:
    return orjson.dumps([s if isinstance(s, int) else [s[0], s[1]] for s in statuses])


def decode_batch_reply(body: bytes, count: int) -> list[Status]:
    """One status per entry sent; raises ProtocolError if the reply does not match."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"revs reply is not JSON: {exc}", code=400) from None
    if not isinstance(data, list) or len(data) != count:
        raise ProtocolError(f"revs reply must be an array of {count} statuses", code=400)
    out: list[Status] = []
    for item in data:
        if isinstance(item, int) and not isinstance(item, bool):
            out.append(item)
        elif (
            isinstance(item, list)
            and len(item) == 2
            and isinstance(item[0], int)
            and isinstance(item[1], str)
        ):
            out.append((item[0], item[1]))
        else:
            raise ProtocolError(f"malformed revs reply status {item!r}", code=400)
    return out
