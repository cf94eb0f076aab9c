from __future__ import annotations

import pytest

from engine.errors import ConflictError, InvalidBodyError
from engine.store import Collection, Database, MutableDocument, RevisionInsert


def test_insert_foreign_revisions_with_history(coll: Collection) -> None:
    res = coll.insert_revision("d", "3-c", ["2-b", "1-a"], {"v": 3})
    assert res.inserted and res.current_rev_id == "3-c" and res.sequence == 1
    again = coll.insert_revision("d", "3-c", ["2-b", "1-a"], {"v": 3})
    assert not again.inserted
    assert coll.last_sequence == 1  # nothing new, no new sequence
    data = coll.read_revision("d")
    assert data is not None and data.history == ["2-b", "1-a"] and data.body == b'{"v":3}'


def test_insert_batch_is_one_transaction(coll: Collection, db: Database) -> None:
    batch = [RevisionInsert(f"d{i}", "1-x", [], {"i": i}) for i in range(5)]
    batch.append(RevisionInsert("bad", "not-a-rev", [], {}))
    with pytest.raises(InvalidBodyError):
        coll.insert_revisions(batch)
    assert coll.count == 0
    assert len(coll.insert_revisions(batch[:5])) == 5
    assert coll.count == 5


def test_tombstones_and_conflicts_from_peers(coll: Collection) -> None:
    coll.insert_revision("d", "1-a", [], {"v": 1})
    res = coll.insert_revision("d", "2-b", ["1-a"], b"{}", deleted=True)
    assert res.current_deleted and coll.get_document("d") is None
    res = coll.insert_revision("d", "2-c", ["1-a"], {"v": 2})
    assert res.current_rev_id == "2-c" and not res.current_deleted and res.conflicts == ()
    res = coll.insert_revision("d", "2-d", ["1-a"], {"v": 3})
    assert res.current_rev_id == "2-d" and res.conflicts == ("2-c",)


def test_revs_diff_and_find_ancestors(coll: Collection) -> None:
    coll.insert_revision("d", "2-b", ["1-a"], {"v": 2})
    missing, ancestors = coll.revs_diff("d", ["2-b", "3-c", "1-a"])
    assert missing == ["3-c"] and ancestors == ["2-b", "1-a"]
    assert coll.revs_diff("none", ["1-x"]) == (["1-x"], [])
    found = coll.find_ancestors([("d", "2-b"), ("d", "1-a"), ("d", "4-z"), ("new", "1-q")])
    assert found == [None, None, ["2-b", "1-a"], []]
    with_bodies = coll.find_ancestors([("d", "4-z")], require_bodies=True)
    assert with_bodies == [["2-b"]]


def test_changes_since(coll: Collection) -> None:
    for i in range(5):
        coll.save(MutableDocument(f"d{i}", {"i": i}))
    coll.delete("d1")
    changes = coll.changes_since(0)
    assert [c.doc_id for c in changes] == ["d0", "d2", "d3", "d4", "d1"]
    assert changes[-1].deleted and changes[-1].sequence == 6
    assert changes[0].body_size == len(b'{"i":0}')
    assert [c.doc_id for c in coll.changes_since(3, limit=1)] == ["d3"]
    assert [c.doc_id for c in coll.changes_since(0, active_only=True)] == ["d0", "d2", "d3", "d4"]


def test_read_revisions_history_stops_at_known(coll: Collection) -> None:
    coll.insert_revision("d", "4-d", ["3-c", "2-b", "1-a"], {"v": 4})
    data = coll.read_revisions([("d", None), ("missing", None), ("d", "3-c")], known={"d": ["2-b"]})
    assert data[0] is not None and data[0].history == ["3-c", "2-b"]
    assert data[1] is None
    assert data[2] is None  # ancestor bodies are not kept
    assert coll.read_revision("d", max_history=1).history == ["3-c"]  # type: ignore[union-attr]


def test_remote_marks_keep_delta_sources(coll: Collection) -> None:
    doc = MutableDocument("d", {"v": 1})
    coll.save(doc)
    first = doc.rev_id
    assert first is not None
    coll.mark_remote_revisions(3, [("d", first)])
    assert coll.last_sequence == 1  # marking is not a change
    doc["v"] = 2
    coll.save(doc)
    assert coll.remote_revision("d", 3) == first
    assert coll.revision_body("d", first) == b'{"v":1}'
    assert coll.revision_body("d", doc.rev_id or "") == b'{"v":2}'


def test_local_documents(db: Database) -> None:
    assert db.get_local("cp") is None
    rev = db.put_local("cp", {"seq": 1}, None)
    assert rev == "1-local" and db.get_local("cp") == ("1-local", {"seq": 1})
    with pytest.raises(ConflictError):
        db.put_local("cp", {"seq": 2}, None)
    assert db.put_local("cp", {"seq": 2}, rev) == "2-local"
    db.put_local("other", {}, None)
    assert db.local_ids() == ["cp", "other"] and db.local_ids("c") == ["cp"]
    db.delete_local("cp")
    assert db.get_local("cp") is None


def test_remote_ids_are_stable(db: Database) -> None:
    a = db.remote_id("wss://peer-a/db")
    assert db.remote_id("wss://peer-b/db") != a
    assert db.remote_id("wss://peer-a/db") == a


def test_no_conflicts_insert_refuses_branches(coll: Collection) -> None:
    coll.insert_revision("d", "2-b", ["1-a"], {"v": 2})
    ok = coll.insert_revisions(
        [RevisionInsert("d", "3-c", ["2-b", "1-a"], {"v": 3}, no_conflicts=True)]
    )[0]
    assert ok.inserted and not ok.rejected
    refused = coll.insert_revisions(
        [RevisionInsert("d", "3-x", ["2-b"], {"v": 9}, no_conflicts=True)]
    )[0]
    assert refused.rejected and not refused.inserted and refused.current_rev_id == "3-c"
    assert coll.get_document("d").conflicts == ()  # type: ignore[union-attr]
    new = coll.insert_revisions([RevisionInsert("n", "1-a", [], {}, no_conflicts=True)])[0]
    assert new.inserted


def test_remote_deletion_against_local_edit_is_a_conflict(coll: Collection) -> None:
    coll.insert_revision("d", "1-a", [], {"v": 1})
    doc = coll.get_document("d").to_mutable()  # type: ignore[union-attr]
    doc["v"] = 2
    coll.save(doc)
    res = coll.insert_revision("d", "2-t", ["1-a"], b"{}", deleted=True)
    assert res.conflicted and res.open_leaves == (doc.rev_id, "2-t")
    assert res.conflicts == ()  # a deleted leaf is not listed in Document.conflicts
    coll.resolve_conflict("d", "2-t")  # the deletion wins
    assert coll.get_document("d") is None
    tomb = coll.get_document("d", include_deleted=True)
    assert tomb is not None and tomb.rev_id == "2-t"  # the closed branch ranks last
    again = coll.insert_revision("d", "3-u", ["2-t", "1-a"], b"{}", deleted=True)
    assert not again.conflicted and again.open_leaves == ("3-u",)


def test_remote_marks_on_lone_revisions_match_the_tree_path(coll: Collection) -> None:
    from engine.store.revtree import RevTree

    for deleted in (False, True):
        tree = RevTree.single("1-abc", deleted, b"{}")
        tree.mark_remote(4, "1-abc")
        assert RevTree.encode_lone("1-abc", deleted, 4) == tree.encode(0)
    coll.save(MutableDocument("lone", {"n": 1}))
    coll.save(MutableDocument("edited", {"n": 1}))
    edited = coll.get_document("edited")
    assert edited is not None
    update = edited.to_mutable()
    update["n"] = 2
    coll.save(update)
    lone = coll.get_document("lone")
    second = coll.get_document("edited")
    assert lone is not None and second is not None and lone.rev_id and second.rev_id
    coll.mark_remote_revisions(4, [("lone", lone.rev_id), ("edited", second.rev_id)])
    coll.mark_remote_revisions(5, [("lone", lone.rev_id)])
    coll.insert_revisions([RevisionInsert("pulled", "1-" + "f" * 40, [], b"{}")], remote_id=4)
    assert coll.remote_revisions(["lone", "edited", "pulled", "none"], 4) == {
        "lone": lone.rev_id,
        "edited": second.rev_id,
        "pulled": "1-" + "f" * 40,
    }
    assert coll.remote_revisions(["lone", "edited"], 5) == {"lone": lone.rev_id}
    # Marked lone revisions are still one change each, with or without all leaves.
    for all_leaves in (False, True):
        changes = coll.changes_since(0, all_leaves=all_leaves)
        assert [(c.doc_id, c.rev_id) for c in changes] == [
            ("lone", lone.rev_id),
            ("edited", second.rev_id),
            ("pulled", "1-" + "f" * 40),
        ]
    # A marked revision later edited locally becomes a real tree again.
    again = lone.to_mutable()
    again["n"] = 3
    coll.save(again)
    assert coll.remote_revisions(["lone"], 4) == {"lone": lone.rev_id}
    assert coll.read_revision("lone") is not None


def test_marks_fast_paths_store_what_the_tree_path_stores(coll: Collection, db: Database) -> None:
    from engine.store.revtree import RevTree

    coll.save(MutableDocument("a", {"n": 1}))
    first = coll.get_document("a")
    assert first is not None and first.rev_id
    rev = first.rev_id
    coll.mark_remote_revisions(1, [("a", rev)])  # lone: written without a tree
    coll.mark_remote_revisions(2, [("a", rev)])  # one node: only the marks change
    coll.mark_remote_revisions(2, [("a", rev)])  # already marked: nothing to do
    expected = RevTree.single(rev, False, b"{}")
    expected.mark_remote(1, rev)
    expected.mark_remote(2, rev)
    sql = f"SELECT tree FROM {coll._table} WHERE doc_id = 'a'"
    assert db._conn.execute(sql).fetchone()[0] == expected.encode(0)
    data = coll.read_revision("a")
    assert data is not None and (data.rev_id, data.history, data.body) == (rev, [], b'{"n":1}')

    update = first.to_mutable()
    update["n"] = 2
    coll.save(update)
    second = update.rev_id
    assert second is not None
    # Two revisions of one document in one call take the tree path, in order.
    coll.mark_remote_revisions(3, [("a", rev), ("a", second)])
    # An older revision than the current one, and an unknown one, also go through the tree.
    coll.mark_remote_revisions(4, [("a", rev), ("gone", "1-" + "0" * 40)])
    assert coll.remote_revisions(["a"], 3) == {"a": second}
    assert coll.remote_revisions(["a"], 4) == {"a": rev}
    assert coll.revision_body("a", rev) == b'{"n":1}'  # kept: remotes hold it
    data = coll.read_revision("a")
    assert data is not None and (data.rev_id, data.history) == (second, [rev])
    assert coll.last_sequence == 2  # marks are not changes


def test_a_batch_may_hold_several_revisions_of_a_new_document(coll: Collection) -> None:
    results = coll.insert_revisions(
        [
            RevisionInsert("n", "1-a", [], {"v": 1}),  # new: its row is written later...
            RevisionInsert("n", "2-b", ["1-a"], {"v": 2}),  # ...but before this one
            RevisionInsert("m", "2-x", ["1-w"], {"x": 2}),  # new, through the tree
            RevisionInsert("m", "1-z", [], {"z": 1}),  # a second root: a branch of m
            RevisionInsert("k", "1-k", [], {}),
            RevisionInsert("k", "1-k", [], {}),  # the same again: known
        ],
        remote_id=7,
    )
    assert [r.inserted for r in results] == [True, True, True, True, True, False]
    assert [r.sequence for r in results] == [1, 2, 3, 4, 5, 0]
    n = coll.read_revision("n")
    assert n is not None and (n.rev_id, n.history, n.body) == ("2-b", ["1-a"], b'{"v":2}')
    assert results[3].conflicted and set(results[3].open_leaves) == {"2-x", "1-z"}
    assert coll.remote_revisions(["n", "m", "k"], 7) == {"n": "2-b", "m": "1-z", "k": "1-k"}
    assert [(c.doc_id, c.rev_id) for c in coll.changes_since(0)] == [
        ("n", "2-b"), ("m", "2-x"), ("k", "1-k")]
    assert coll.last_sequence == 5


def test_marks_without_sqlite_json_functions(coll: Collection) -> None:
    """An SQLite built without JSON functions: the marks are written from Python instead."""
    coll.save(MutableDocument("a", {"n": 1}))
    rev = coll.get_document("a").rev_id  # type: ignore[union-attr]
    assert rev is not None
    coll._mark_current_sql = (
        f"UPDATE {coll._table} SET tree = no_such_json(?1) WHERE doc_id = ?2 AND rev = ?3"
    )
    coll.mark_remote_revisions(1, [("a", rev)])
    assert coll._mark_current_sql == ""
    coll.mark_remote_revisions(2, [("a", rev)])
    assert coll.remote_revisions(["a"], 1) == {"a": rev} == coll.remote_revisions(["a"], 2)


def test_conflicted_documents_are_found_through_an_index(coll: Collection, db: Database) -> None:
    """Looked for after every pull: no scan of every row (and body) of the collection."""
    coll.insert_revision("d", "1-a", [], {"v": 1})
    coll.insert_revision("d", "2-b", ["1-a"], {"v": 2})
    coll.insert_revision("d", "2-c", ["1-a"], {"v": 3})
    coll.save(MutableDocument("plain", {}))
    statements: list[str] = []
    db._conn.set_trace_callback(statements.append)
    try:
        assert coll.conflicted_ids() == ["d"]
    finally:
        db._conn.set_trace_callback(None)
    (query,) = [s for s in statements if s.startswith("SELECT")]
    plan = db._conn.execute("EXPLAIN QUERY PLAN " + query).fetchall()
    assert any(f"{coll._table}_conflicted" in row[-1] for row in plan), plan
