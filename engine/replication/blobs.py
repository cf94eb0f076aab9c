"""Blobs on the wire: finding their digests in bodies, fetching and serving their content."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

from engine.blip import BlipConnection, BlipError, IncomingRequest, OutgoingReply
from engine.store import Database, is_blob_dict

__all__ = ["blob_digests", "fetch_blob", "may_have_blobs", "prove_attachment", "serve_blob"]

CHUNK = 16 * 1024


def may_have_blobs(raw: bytes) -> bool:
    """False when JSON text cannot reference a blob (walking each body costs ~5 us a doc).

    A blob needs an ``@type`` or ``_attachments`` key, which JSON could only hide with
    ``\\u`` escapes; any backslash-u sends the body through the full walk.
    """
    # A one-byte search (memchr) first: five times faster than the longer ones.
    return (
        (b"@" in raw and b"@type" in raw)
        or (b"\\" in raw and b"\\u" in raw)
        or b"_attachments" in raw
    )


def blob_digests(body: Any) -> Iterator[str]:
    """Digests referenced by a body: `@type: blob` dicts and legacy `_attachments`."""
    if isinstance(body, dict):
        if is_blob_dict(body):
            yield str(body["digest"])
        attachments = body.get("_attachments")
        if isinstance(attachments, dict):
            for meta in attachments.values():
                if isinstance(meta, dict) and isinstance(meta.get("digest"), str):
                    yield meta["digest"]
        for key, value in body.items():
            if key != "_attachments" and isinstance(value, (dict, list)):
                yield from blob_digests(value)
    elif isinstance(body, list):
        for value in body:
            if isinstance(value, (dict, list)):
                yield from blob_digests(value)


async def fetch_blob(
    conn: BlipConnection, db: Database, digest: str, doc_id: str, collection: int | None
) -> int:
    """Fetch a blob with `getAttachment` and store it; returns its length."""
    # As Couchbase Lite asks: the peer may then deflate the blob on the wire.
    props = {"digest": digest, "docID": doc_id, "compress": "true"}
    if collection is not None:
        props["collection"] = str(collection)
    response = await conn.send_request("getAttachment", props, stream_response=True)
    assert response is not None
    writer = db.blob_store.writer()
    try:
        async for chunk in response.stream():
            writer.write(chunk)
    except BaseException:
        writer.abort()
        raise
    length = writer.length
    await db.run(writer.finish, digest)
    return length


async def _chunks(db: Database, digest: str) -> AsyncIterator[bytes]:
    with db.blob_store.open(digest) as f:
        while chunk := f.read(CHUNK):
            yield chunk


def serve_blob(db: Database, request: IncomingRequest) -> OutgoingReply:
    """The reply to `getAttachment`: the blob's content, streamed."""
    digest = request.properties.get("digest", "")
    try:
        found = db.blob_store.has(digest)
    except Exception:
        found = False
    if not found:
        raise BlipError("HTTP", 404, f"no blob with digest {digest!r}")
    compress = request.properties.get("compress", "").lower() in ("true", "1")
    return OutgoingReply(body=_chunks(db, digest), compressed=compress)


def prove_attachment(db: Database, request: IncomingRequest) -> OutgoingReply:
    """The reply to `proveAttachment`: SHA-1 of nonce length, nonce and blob content."""
    digest = request.properties.get("digest", "")
    nonce = request.body
    if not 0 < len(nonce) < 256:
        raise BlipError("HTTP", 400, "proveAttachment nonce must be 1-255 bytes")
    try:
        chunks = db.blob_store.chunks(digest)
        sha = hashlib.sha1(bytes((len(nonce),)) + nonce, usedforsecurity=False)
        for chunk in chunks:
            sha.update(chunk)
    except Exception:
        raise BlipError("HTTP", 404, f"no blob with digest {digest!r}") from None
    return OutgoingReply(body=("sha1-" + base64.b64encode(sha.digest()).decode()).encode())
