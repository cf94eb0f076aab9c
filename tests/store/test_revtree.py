from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.store.revid import generation, new_rev_id, winner_key
from engine.store.revtree import NO_PARENT, RevTree


def chain(n: int, tree: RevTree | None = None, start: int = NO_PARENT, tag: str = "") -> RevTree:
    tree = tree or RevTree([])
    parent = start
    for _ in range(n):
        parent_id = tree.revs[parent].rev_id if parent != NO_PARENT else None
        rev = new_rev_id(parent_id, False, f'{{"t":"{tag}"}}'.encode())
        parent = tree.add_child(parent, rev, False, b"{}")
    return tree


def test_rev_ids_are_deterministic_and_distinct() -> None:
    a = new_rev_id(None, False, b'{"a":1}')
    assert a == new_rev_id(None, False, b'{"a":1}')
    assert a.startswith("1-") and len(a) == 42
    assert a != new_rev_id(None, True, b'{"a":1}')
    assert a != new_rev_id(None, False, b'{"a":2}')
    child = new_rev_id(a, False, b'{"a":2}')
    assert generation(child) == 2
    assert child != new_rev_id(None, False, b'{"a":2}')


def test_winner_order() -> None:
    assert winner_key("1-a", False) > winner_key("9-z", True)  # live beats deleted
    assert winner_key("3-a", False) > winner_key("2-z", False)  # then generation
    assert winner_key("3-b", False) > winner_key("3-a", False)  # then digest
    assert winner_key("10-a", False) > winner_key("9-z", False)  # numerically


def test_current_and_conflicts() -> None:
    tree = RevTree([])
    root = tree.add_child(NO_PARENT, "1-a", False, b"{}")
    tree.add_child(root, "2-a", False, b"{}")
    tree.add_child(root, "2-b", False, b"{}")
    assert tree.revs[tree.current()].rev_id == "2-b"
    assert tree.conflicts() == ["2-a"]
    tree.add_child(tree.find("2-b") or 0, "3-x", True, b"{}")
    assert tree.revs[tree.current()].rev_id == "2-a"  # a live leaf beats a deleted one
    assert tree.conflicts() == []


def test_insert_history_connects_to_known_ancestor() -> None:
    tree = chain(2)
    first, second = tree.revs[0].rev_id, tree.revs[1].rev_id
    index, added = tree.insert_history("4-d", ["3-c", second, first], False, b'{"x":1}')
    assert added
    assert tree.history(index) == ["4-d", "3-c", second, first]
    assert tree.insert_history("4-d", [], False, b"{}") == (index, False)


def test_prune_depth_and_bodies() -> None:
    tree = chain(30)
    tree.prune(20)
    assert len(tree) == 20
    leaf = tree.current()
    history = tree.history(leaf)
    assert len(history) == 20
    assert [generation(r) for r in history] == list(range(30, 10, -1))
    parent = tree.revs[leaf].parent
    assert [r for r in tree.revs if r.body is not None] == [tree.revs[parent], tree.revs[leaf]]


def test_prune_keeps_remote_bodies() -> None:
    tree = chain(5)
    marked = tree.revs[2].rev_id
    tree.mark_remote(7, marked)
    tree.prune(20)
    assert tree.revs[tree.find(marked) or 0].body is not None
    tree.prune(2)  # the marked revision falls off the tree: the mark goes too
    assert marked not in tree and tree.remotes == {}


def test_encode_decode_round_trip() -> None:
    tree = chain(3)
    tree.add_child(0, "2-zz", False, b'{"b":2}')
    tree.mark_remote(1, "2-zz")
    cur = tree.current()
    blob = tree.encode(cur)
    assert blob is not None
    cur_rev = tree.revs[cur]
    again = RevTree.decode(cur_rev.rev_id, cur_rev.deleted, cur_rev.body or b"", blob)
    assert [(r.rev_id, r.parent, r.deleted, r.body) for r in again.revs] == [
        (r.rev_id, r.parent, r.deleted, r.body) for r in tree.revs
    ]
    assert again.remotes == {1: "2-zz"}
    assert RevTree.single("1-a", False, b"{}").encode(0) is None


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 50), st.booleans()), min_size=1, max_size=60),
    st.integers(1, 8),
)
def test_random_trees_prune_sanely(ops: list[tuple[int, bool]], depth: int) -> None:
    tree = RevTree([])
    for n, (pick, deleted) in enumerate(ops):
        parent = NO_PARENT if not tree.revs else pick % len(tree.revs)
        if parent != NO_PARENT and tree.revs[parent].deleted:
            parent = NO_PARENT
        parent_id = tree.revs[parent].rev_id if parent != NO_PARENT else None
        tree.add_child(parent, new_rev_id(parent_id, deleted, str(n).encode()), deleted, b"{}")
    leaves_before = {tree.revs[i].rev_id for i in tree.leaves()}
    winner_before = tree.revs[tree.current()].rev_id
    tree.prune(depth)
    assert {tree.revs[i].rev_id for i in tree.leaves()} == leaves_before
    assert tree.revs[tree.current()].rev_id == winner_before
    for i in tree.leaves():
        assert len(tree.history(i)) <= depth
        assert tree.revs[i].body is not None


@pytest.mark.parametrize("rev_id", ["1-abc", '2-q"uote', "3-back\\slash", "4-é"])
@pytest.mark.parametrize("deleted", [False, True])
def test_encode_lone_is_encode_of_a_marked_lone_revision(rev_id: str, deleted: bool) -> None:
    tree = RevTree.single(rev_id, deleted, b"{}")
    tree.mark_remote(12, rev_id)
    assert RevTree.encode_lone(rev_id, deleted, 12) == tree.encode(0)


@pytest.mark.parametrize(
    ("rev_id", "valid"),
    [("1-a", True), ("01-a", True), ("12-abc\ndef", True), ("1-" + "a" * 298, True),
     ("0-a", False), ("-a", False), ("1-", False), ("a-1", False), ("1a-b", False),
     ("\u00b2-x", False), ("1-" + "a" * 299, False), (5, False), (None, False)],
)
def test_revision_id_syntax(rev_id: object, valid: bool) -> None:
    from engine.store.revid import is_valid_rev_id

    assert is_valid_rev_id(rev_id) is valid
