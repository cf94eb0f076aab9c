from __future__ import annotations

import io
import tracemalloc
from collections.abc import Iterator

import pytest

from engine.errors import BlobError, NotFoundError
from engine.store import Blob, Collection, Database, MutableDocument, digest_of


def test_blob_saved_with_document(coll: Collection, db: Database) -> None:
    data = b"hello blob" * 100
    doc = MutableDocument("d", {"att": Blob("text/plain", data), "n": 1})
    coll.save(doc)
    stored = coll.get_document("d")
    assert stored is not None
    meta = stored["att"]
    assert meta == {
        "@type": "blob",
        "content_type": "text/plain",
        "digest": digest_of(data),
        "length": len(data),
    }
    assert meta["digest"].startswith("sha1-")
    blob = stored.get_blob("att")
    assert blob is not None and blob.content == data and blob.length == len(data)
    assert stored.get_blob("n") is None
    assert db.blob_store.has(meta["digest"])


def test_stream_blob_from_file_object(coll: Collection) -> None:
    data = bytes(range(256)) * 1000
    coll.save(
        MutableDocument("d", {"f": Blob("application/octet-stream", stream=io.BytesIO(data))})
    )
    blob = coll.get_document("d").get_blob("f")  # type: ignore[union-attr]
    assert blob is not None and blob.digest == digest_of(data)
    assert b"".join(blob.chunks(1000)) == data


def test_large_blob_streams_without_holding_it(coll: Collection) -> None:
    size = 20 * 1024 * 1024
    chunk = b"\xab" * 65536

    def produce() -> Iterator[bytes]:
        for _ in range(size // len(chunk)):
            yield chunk

    tracemalloc.start()
    try:
        coll.save(MutableDocument("big", {"b": Blob("application/octet-stream", stream=produce())}))
        blob = coll.get_document("big").get_blob("b")  # type: ignore[union-attr]
        assert blob is not None
        total = sum(len(c) for c in blob.chunks())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == size and blob.length == size
    assert peak < 4 * 1024 * 1024, f"peak Python memory {peak} bytes for a 20 MB blob"


def test_compact_removes_unreferenced_blobs(coll: Collection, db: Database) -> None:
    keep, drop = b"keep me", b"drop me"
    coll.save(MutableDocument("a", {"x": Blob("text/plain", keep)}))
    doc = MutableDocument("b", {"x": Blob("text/plain", drop)})
    coll.save(doc)
    doc["x"] = "no blob any more"
    coll.save(doc)
    assert db.compact() == 0  # the previous revision (a delta source) still holds it
    doc["x"] = "and again"
    coll.save(doc)
    assert db.blob_store.has(digest_of(drop))
    assert db.compact() == 1
    assert db.blob_store.has(digest_of(keep)) and not db.blob_store.has(digest_of(drop))


def test_blob_referenced_by_conflict_branch_survives_compact(
    coll: Collection, db: Database
) -> None:
    data = b"branch blob"
    db.blob_store.write([data])
    meta = {"@type": "blob", "digest": digest_of(data), "length": len(data)}
    coll.insert_revision("d", "1-a", [], {"v": 1})
    coll.insert_revision("d", "2-b", ["1-a"], {"att": meta})
    coll.insert_revision("d", "2-c", ["1-a"], {"v": 2})
    assert db.compact() == 0


def test_blob_errors(db: Database) -> None:
    with pytest.raises(TypeError):
        Blob("text/plain")
    with pytest.raises(NotFoundError):
        db.blob_store.read(digest_of(b"never stored"))
    with pytest.raises(BlobError):
        db.blob_store.path("md5-abc")
    writer = db.blob_store.writer()
    writer.write(b"data")
    with pytest.raises(BlobError):
        writer.finish(expected_digest=digest_of(b"other"))
    assert not db.blob_store.has(digest_of(b"data"))
    assert not list(db.blob_store.directory.glob(".incoming-*"))
