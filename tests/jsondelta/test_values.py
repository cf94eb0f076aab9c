"""Type-strict JSON equality: True, 1 and 1.0 differ, as they do in JSON text."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given

from engine.jsondelta import JSON, encoded_size, json_equal

from .strategies import FAST, related_pairs


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (1, True),
        (0, False),
        (1, 1.0),
        (0.0, -0.0),
        (None, 0),
        ("1", 1),
        ([], {}),
        ([1], [True]),
        ({"a": 1}, {"a": 1.0}),
        ({"a": 1}, {"a": 1, "b": None}),
        ([1, 2], [2, 1]),
    ],
)
def test_distinguishes_what_json_distinguishes(a: JSON, b: JSON) -> None:
    assert not json_equal(a, b)
    assert not json_equal(b, a)


def test_ignores_object_key_order() -> None:
    assert json_equal({"a": 1, "b": [1.5, None]}, {"b": [1.5, None], "a": 1})


@FAST
@given(related_pairs())
def test_agrees_with_canonical_json_text(pair: tuple[JSON, JSON]) -> None:
    a, b = pair
    text_a = orjson.dumps(a, option=orjson.OPT_SORT_KEYS)
    text_b = orjson.dumps(b, option=orjson.OPT_SORT_KEYS)
    assert json_equal(a, b) == (text_a == text_b)
    assert json_equal(a, a)


def test_encoded_size_is_the_orjson_length() -> None:
    value = {"é": [1, 2.5, None, True, "x\"y"]}
    assert encoded_size(value) == len(orjson.dumps(value)) == 31
