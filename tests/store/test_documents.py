from __future__ import annotations

import pytest

from engine.errors import (
    ConflictError,
    DatabaseClosedError,
    InvalidBodyError,
    InvalidDocumentIDError,
    InvalidNameError,
    NotFoundError,
)
from engine.store import (
    FAIL_ON_CONFLICT,
    Collection,
    Database,
    MutableDocument,
)


def test_save_get_update(coll: Collection) -> None:
    doc = MutableDocument("a", {"name": "x", "n": [1, 2]})
    coll.save(doc)
    assert doc.rev_id is not None and doc.rev_id.startswith("1-")
    assert doc.sequence == 1
    got = coll.get_document("a")
    assert got is not None
    assert got.properties == {"name": "x", "n": [1, 2]}
    assert got["name"] == "x" and len(got) == 2 and got.generation == 1
    edit = got.to_mutable()
    edit["name"] = "y"
    coll.save(edit)
    assert edit.rev_id is not None and edit.rev_id.startswith("2-")
    assert edit.sequence == 2
    assert coll.get_document("a").properties["name"] == "y"  # type: ignore[union-attr]
    assert coll.count == 1


def test_equal_edits_make_equal_rev_ids(tmp_path: object) -> None:
    with Database("one", tmp_path) as a, Database("two", tmp_path) as b:  # type: ignore[arg-type]
        for db in (a, b):
            doc = MutableDocument("d", {"k": 1})
            db.default_collection().save(doc)
            doc["k"] = 2
            db.default_collection().save(doc)
        assert (
            a.default_collection().get_document("d").rev_id  # type: ignore[union-attr]
            == b.default_collection().get_document("d").rev_id
        )  # type: ignore[union-attr]


def test_concurrency_control(coll: Collection) -> None:
    coll.save(MutableDocument("a", {"v": 1}))
    first = coll.get_document("a").to_mutable()  # type: ignore[union-attr]
    second = coll.get_document("a").to_mutable()  # type: ignore[union-attr]
    first["v"] = 2
    coll.save(first)
    second["v"] = 3
    with pytest.raises(ConflictError):
        coll.save(second, FAIL_ON_CONFLICT)
    assert coll.get_document("a")["v"] == 2  # type: ignore[index]
    coll.save(second)  # last write wins: on top of the current revision
    cur = coll.get_document("a")
    assert cur is not None and cur["v"] == 3 and cur.generation == 3
    assert cur.conflicts == ()
    with pytest.raises(ConflictError):
        coll.save(MutableDocument("a", {"new": True}), FAIL_ON_CONFLICT)


def test_delete_and_recreate(coll: Collection) -> None:
    doc = MutableDocument("a", {"v": 1})
    coll.save(doc)
    coll.delete(doc)
    assert coll.get_document("a") is None
    tomb = coll.get_document("a", include_deleted=True)
    assert tomb is not None and tomb.deleted and tomb.generation == 2
    assert coll.count == 0
    with pytest.raises(NotFoundError):
        coll.delete("a")
    again = MutableDocument("a", {"v": 2})
    coll.save(again, FAIL_ON_CONFLICT)  # recreating over a tombstone is not a conflict
    assert again.rev_id is not None and again.rev_id.startswith("3-")
    assert coll.get_document("a")["v"] == 2  # type: ignore[index]


def test_purge(coll: Collection) -> None:
    coll.save(MutableDocument("a", {}))
    coll.purge("a")
    assert coll.get_document("a", include_deleted=True) is None
    with pytest.raises(NotFoundError):
        coll.purge("a")
    doc = MutableDocument("a", {"v": 1})
    coll.save(doc)
    assert doc.generation == 1 and doc.sequence == 2  # sequence 1 is never reused


def test_invalid_bodies_and_ids(coll: Collection) -> None:
    for body in ({"x": float("nan")}, {"x": [float("inf")]}, {"x": object()}, {1: "int key"}):
        with pytest.raises(InvalidBodyError):
            coll.save(MutableDocument("bad", body))  # type: ignore[arg-type]
    assert coll.get_document("bad") is None
    with pytest.raises(InvalidDocumentIDError):
        MutableDocument("")
    with pytest.raises(InvalidDocumentIDError):
        coll.get_document("x" * 300)


def test_null_values_are_kept(coll: Collection) -> None:
    coll.save(MutableDocument("n", {"a": None, "b": [None, 1.5]}))
    assert coll.get_document("n").properties == {"a": None, "b": [None, 1.5]}  # type: ignore[union-attr]


def test_collections(db: Database) -> None:
    assert db.default_collection().full_name == "_default._default"
    users = db.create_collection("users", "app")
    assert db.create_collection("users", "app").id == users.id
    assert db.collection("users", "app") is not None
    assert db.collection("nope", "app") is None
    assert [c.name for c in db.collections("app")] == ["users"]
    assert db.scopes() == ["_default", "app"]
    users.save(MutableDocument("u1", {"n": 1}))
    assert db.default_collection().get_document("u1") is None
    assert users.changes_since(0)[0].sequence == 1  # sequences are per collection
    db.delete_collection("users", "app")
    assert db.collection("users", "app") is None
    with pytest.raises(InvalidNameError):
        db.delete_collection("_default")
    with pytest.raises(InvalidNameError):
        db.create_collection("_bad")
    with pytest.raises(NotFoundError):
        db.delete_collection("users", "app")


def test_pagination(coll: Collection, db: Database) -> None:
    with db.in_batch():
        for i in range(25):
            coll.save(MutableDocument(f"d{i:02d}", {"i": i}))
    coll.delete("d03")
    pages: list[list[str]] = []
    after = None
    while True:
        page = coll.document_ids(limit=10, after=after)
        if not page:
            break
        pages.append(page)
        after = page[-1]
    assert [len(p) for p in pages] == [10, 10, 4]
    assert [i for page in pages for i in page] == [f"d{i:02d}" for i in range(25) if i != 3]
    assert "d03" in coll.document_ids(include_deleted=True)
    assert [d.id for d in coll.iter_documents(batch=7)][:3] == ["d00", "d01", "d02"]


def test_batch_rolls_back_on_error(coll: Collection, db: Database) -> None:
    with pytest.raises(RuntimeError), db.in_batch():
        coll.save(MutableDocument("a", {}))
        coll.save(MutableDocument("b", {}))
        raise RuntimeError("boom")
    assert coll.count == 0
    coll.save(MutableDocument("c", {}))
    assert coll.get_document("c").sequence == 1  # type: ignore[union-attr]


def test_conflict_visible_and_resolved_by_save(coll: Collection) -> None:
    doc = MutableDocument("c", {"v": 0})
    coll.save(doc)
    base = doc.rev_id
    assert base is not None
    coll.insert_revision("c", "2-aaaa", [base], {"v": "remote-a"})
    coll.insert_revision("c", "2-bbbb", [base], {"v": "remote-b"})
    cur = coll.get_document("c")
    assert cur is not None and cur.rev_id == "2-bbbb" and cur.conflicts == ("2-aaaa",)
    merged = cur.to_mutable()
    merged["v"] = "merged"
    coll.save(merged)
    after = coll.get_document("c")
    assert after is not None and after.conflicts == () and after["v"] == "merged"
    assert after.generation == 3


def test_resolve_conflict_explicitly(coll: Collection) -> None:
    coll.insert_revision("c", "1-aa", [], {"v": 1})
    coll.insert_revision("c", "2-bb", ["1-aa"], {"v": 2})
    coll.insert_revision("c", "2-cc", ["1-aa"], {"v": 3})
    assert coll.get_document("c").conflicts == ("2-bb",)  # type: ignore[union-attr]
    rev = coll.resolve_conflict("c", "2-bb")
    doc = coll.get_document("c")
    assert doc is not None and rev == "2-bb" == doc.rev_id and doc.conflicts == ()
    assert doc["v"] == 2
    coll.insert_revision("c", "3-dd", ["2-bb"], {"v": 4})
    coll.insert_revision("c", "3-ee", ["2-bb"], {"v": 5})
    rev = coll.resolve_conflict("c", "3-dd", {"v": "m"})
    assert rev.startswith("4-")
    assert coll.get_document("c")["v"] == "m"  # type: ignore[index]
    with pytest.raises(NotFoundError):
        coll.resolve_conflict("c", "1-aa")


def test_old_bodies_pruned_and_depth_limited(tmp_path: object) -> None:
    with Database("depth", tmp_path, max_rev_tree_depth=5) as db:  # type: ignore[arg-type]
        coll = db.default_collection()
        doc = MutableDocument("d", {"n": 0})
        for n in range(12):
            doc["n"] = n
            coll.save(doc)
        data = coll.read_revision("d", max_history=100)
        assert data is not None and len(data.history) == 4
        assert coll.revision_body("d", data.history[0]) == b'{"n":10}'  # parent: kept
        assert coll.revision_body("d", data.history[1]) is None  # older ancestors lose bodies


def test_closed_database(tmp_path: object) -> None:
    db = Database("c", tmp_path)  # type: ignore[arg-type]
    coll = db.default_collection()
    db.close()
    db.close()  # idempotent
    with pytest.raises(DatabaseClosedError):
        coll.get_document("x")
    with pytest.raises(DatabaseClosedError):
        coll.save(MutableDocument("x"))


def test_reopen_and_delete(tmp_path: object) -> None:
    with Database("p", tmp_path) as db:  # type: ignore[arg-type]
        db.default_collection().save(MutableDocument("a", {"k": "v"}))
        uuid = db.uuid
    assert Database.exists("p", tmp_path)  # type: ignore[arg-type]
    db = Database("p", tmp_path)  # type: ignore[arg-type]
    assert db.uuid == uuid
    assert db.default_collection().get_document("a")["k"] == "v"  # type: ignore[index]
    path = db.path
    db.delete()
    assert not path.exists()


def test_open_path_names_database_after_folder(tmp_path: object) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path)) / "notes"
    with Database.open_path(folder) as db:
        assert db.name == "notes"
        assert (folder / "db.sqlite3").is_file()


def test_new_documents_buffered_in_a_batch_keep_save_semantics(coll: Collection,
                                                               db: Database) -> None:
    coll.save(MutableDocument("exists", {"v": "old"}))
    events: list[object] = []
    coll.add_change_listener(events.append)
    with db.in_batch():
        fresh = MutableDocument("fresh", {"v": 1})
        coll.save(fresh)
        assert coll.get_document("fresh")["v"] == 1  # type: ignore[index]  # read own write
        again = MutableDocument("exists", {"v": "new"})  # a new object for an existing ID
        coll.save(again)
        twice_a = MutableDocument("twice", {"v": "a"})
        twice_b = MutableDocument("twice", {"v": "b"})
        coll.save(twice_a)
        coll.save(twice_b)
        with pytest.raises(ConflictError):  # checked at once, not deferred
            coll.save(MutableDocument("exists", {"v": "x"}), FAIL_ON_CONFLICT)
    existing = coll.get_document("exists")
    assert existing is not None and existing["v"] == "new" and existing.generation == 2
    assert again.rev_id == existing.rev_id and again.sequence == existing.sequence
    twice = coll.get_document("twice")
    assert twice is not None and twice["v"] == "b" and twice.generation == 2
    assert twice_b.rev_id == twice.rev_id
    assert len(events) == 1  # one notification for the whole batch
    seqs = [c.sequence for c in coll.changes_since(0)]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
