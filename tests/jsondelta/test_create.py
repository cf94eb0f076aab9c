"""create_delta: the forms it picks, type-strict equality, and compactness."""

from __future__ import annotations

import copy
import random

import pytest

from engine.jsondelta import (
    JSON,
    MIN_STRING_DIFF,
    apply_delta,
    create_delta,
    encoded_size,
    json_equal,
)

from .helpers import assert_documented_form

LONG = "lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor"


@pytest.mark.parametrize(
    ("old", "new", "delta"),
    [
        (5, 6, [6]),  # the top level is always wrapped, as Fleece does
        ({"a": 1}, {"a": 2}, {"a": 2}),  # below it scalars are bare
        ({"a": 1}, {"a": "1"}, {"a": "1"}),
        ({"k": LONG}, {"k": LONG, "a": [1]}, {"a": [[1]]}),  # new arrays and objects are wrapped
        ({"k": LONG}, {"k": LONG, "a": {}}, {"a": [{}]}),
        ({}, {"a": [1]}, [{"a": [1]}]),  # shorter than {"a":[[1]]}
        ({"a": 1, "b": 2}, {"b": 2}, {"a": []}),
        ({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3}}, {"a": {"c": 3}}),
        ({"k": LONG, "a": {"b": 1, "c": 2}}, {"k": LONG, "a": {}}, {"a": [{}]}),
        ([1, 2, 3], [1, 9, 3], {"1": 9}),
        ([1, 2, 3], [1, 2, 3, 4, 5], {"3-": [4, 5]}),
        ([1, 2, 3, 5, 6, 7], [1, 2, 3, 4, 5], {"3-": [4, 5]}),  # Fleece: {"3":4,"4":5,"5-":[]}
        ([1, 2, 3, 4, 5, 6], [1, 2, 3], [[1, 2, 3]]),  # shorter than {"3-":[]}
        ([LONG, 2, 3, 4], [LONG, 2], {"2-": []}),
        ([0, *range(10, 20)], [1, *range(10, 20)], {"0": 1}),
        ([*range(10, 20)], [0, *range(10, 20)], [[0, *range(10, 20)]]),
        ({"l": [{"a": 1, "b": LONG}]}, {"l": [{"a": 2, "b": LONG}]}, {"l": {"0": {"a": 2}}}),
        (1, True, [True]),  # JSON tells these apart; Python's == does not
        (1, 1.0, [1.0]),
        (0.0, -0.0, [-0.0]),
        ({"a": 1}, {"a": 1.0}, {"a": 1.0}),
        ([False], [0], [[0]]),
        ([LONG, False], [LONG, 0], {"1": 0}),
        ([], {}, [{}]),
        (None, False, [False]),
    ],
)
def test_creates(old: JSON, new: JSON, delta: JSON) -> None:
    found = create_delta(old, new)
    assert json_equal(found, delta)
    assert json_equal(apply_delta(old, found), new)


@pytest.mark.parametrize(
    "value", [None, 0, 0.5, "", "x", [], {}, [1, [2]], {"b": 1, "a": [None, {}]}]
)
def test_equal_values_have_no_delta(value: JSON) -> None:
    assert create_delta(value, value) is None


def test_key_order_is_not_a_difference() -> None:
    assert create_delta({"a": 1, "b": 2}, {"b": 2, "a": 1}) is None


def test_long_string_small_edit_is_a_text_diff() -> None:
    old = {"text": LONG}
    new = {"text": LONG.replace("dolor", "dolorem")}
    assert create_delta(old, new) == {"text": ["17=2+em|61=", 0, 2]}


def test_text_diff_counts_utf8_bytes() -> None:
    old, new = "x" * 60 + "é!", "x" * 60 + "è!"
    assert create_delta(old, new) == ["60=2-2+è|1=", 0, 2]
    assert apply_delta(old, ["60=2-2+è|1=", 0, 2]) == new


def test_short_strings_are_replaced_whole() -> None:
    old, new = "a" * 40 + "b", "a" * 40 + "c"
    assert len(new.encode()) < MIN_STRING_DIFF
    assert create_delta(old, new) == [new]
    assert create_delta(old, new, min_string_diff=0) == ["40=1-1+c|", 0, 2]


def test_text_diff_only_where_it_pays_off() -> None:
    rng = random.Random(7)
    old = "".join(rng.choice("abcdefgh") for _ in range(300))
    new = "".join(rng.choice("abcdefgh") for _ in range(300))
    assert create_delta({"s": old}, {"s": new}, min_string_diff=0) == {"s": new}


@pytest.mark.parametrize("newline", ["\n", " "])  # diffed by lines first, or by words
def test_large_string_with_scattered_edits_stays_small(newline: str) -> None:
    rng = random.Random(3)
    words = LONG.split()
    count = 30_000 if newline == "\n" else 3_000
    tokens = [rng.choice(words) + rng.choice([" ", ", ", "." + newline]) for _ in range(count)]
    old = "".join(tokens)
    for index in (100, count // 3, count // 2, count - 10):
        tokens[index] = "CHANGED "
    new = "".join(tokens)
    delta = create_delta({"body": old}, {"body": new})
    assert json_equal(apply_delta({"body": old}, delta), {"body": new})
    assert encoded_size(delta) < 120


def test_delta_of_a_big_document_is_small() -> None:
    old = {"items": [{"i": i, "name": f"item {i}", "tags": ["a", "b"]} for i in range(500)]}
    new = {"items": [dict(item) for item in old["items"]]}
    new["items"][250]["tags"] = ["a", "b", "c"]
    new["items"].append({"i": 500})
    delta = create_delta(old, new)
    assert delta == {"items": {"250": {"tags": {"2-": ["c"]}}, "500-": [{"i": 500}]}}
    assert_documented_form(old, delta)


@pytest.mark.parametrize("depth", [300, 2000])
def test_values_orjson_cannot_encode_raise_type_error(depth: int) -> None:
    deep: JSON = 1
    for _ in range(depth):
        deep = [deep]
    with pytest.raises(TypeError):
        create_delta(0, deep)
    with pytest.raises(TypeError):
        create_delta(deep, [deep])


def test_nesting_orjson_can_encode_works() -> None:
    chain: JSON = "x"
    for _ in range(250):
        chain = {"k": chain}
    old = {"pad": LONG, "k": chain}
    new = copy.deepcopy(old)
    innermost = new
    while isinstance(innermost["k"], dict):
        innermost = innermost["k"]
    innermost["k"] = "y"
    delta = create_delta(old, new)
    assert encoded_size(delta) < encoded_size(new)
    assert json_equal(apply_delta(old, delta), new)
