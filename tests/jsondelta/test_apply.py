"""apply_delta: every form of the format, and a precise DeltaError for each way a delta can fail."""

from __future__ import annotations

from typing import Any

import pytest

from engine.errors import PeerbaseError
from engine.jsondelta import JSON, DeltaError, apply_delta, json_equal

from .helpers import containers


@pytest.mark.parametrize(
    ("old", "delta", "new"),
    [
        ({"a": 1, "b": 2}, {"a": "x"}, {"a": "x", "b": 2}),  # bare scalar below the top
        ({"a": 1}, {"a": None}, {"a": None}),
        ({"a": 1}, {"a": [[1, 2]]}, {"a": [1, 2]}),  # [newValue]
        ({"a": 1, "b": 2}, {"b": []}, {"a": 1}),  # [] deletes
        ({"a": 1}, {"b": [{"c": 1}]}, {"a": 1, "b": {"c": 1}}),  # insertion of an object
        ({"a": 1}, {"b": 2.5}, {"a": 1, "b": 2.5}),  # insertion of a scalar
        ({"a": {"b": {"c": 1, "d": 2}}}, {"a": {"b": {"d": []}}}, {"a": {"b": {"c": 1}}}),
        (5, [6], 6),
        ("s", [{"k": []}], {"k": []}),
        (5, {}, 5),  # Fleece's no-op delta {}
        ([1], {}, [1]),
        ({"a": 1}, {"a": {}}, {"a": 1}),
        ([1, 2, 3], {"1": 9}, [1, 9, 3]),
        ([1, 2, 3], {"3-": [4, 5]}, [1, 2, 3, 4, 5]),  # append
        ([1, 2, 3], {"1-": []}, [1]),  # truncate
        ([1, 2, 3], {"0": 0, "1-": ["b", "c", "d"]}, [0, "b", "c", "d"]),  # replace the tail
        ([1, 2, 3], {"3-": []}, [1, 2, 3]),
        ([[1, 2]], {"0": {"2-": [3]}}, [[1, 2, 3]]),
        ({"l": ["abc"]}, {"l": {"0": ["1=1-1=1+d|", 0, 2]}}, {"l": ["acd"]}),
        ({"a": 1}, {"a": [1, 2]}, {"a": 2}),  # JsonDiffPatch [old, new], decoded by Fleece
        ({"a": 1, "b": 2}, {"a": [1, 0, 0]}, {"b": 2}),  # JsonDiffPatch [old, 0, 0]
        ("", ["3+abc|", 0, 2], "abc"),
        ("abc", ["3-", 0, 2], ""),
        ("a☃b", ["1=3-1+c|1=", 0, 2], "acb"),
    ],
)
def test_applies(old: JSON, delta: JSON, new: JSON) -> None:
    assert json_equal(apply_delta(old, delta), new)


def test_result_shares_nothing_with_its_inputs() -> None:
    old: JSON = {"keep": {"x": [1, {"y": 2}]}, "list": [[1], [2]], "edit": {"a": 1}}
    delta: JSON = {"new": [{"z": [3]}], "list": {"2-": [[4]]}, "edit": {"b": [[5]]}}
    result = apply_delta(old, delta)
    assert json_equal(
        result,
        {
            "keep": {"x": [1, {"y": 2}]},
            "list": [[1], [2], [4]],
            "edit": {"a": 1, "b": [5]},
            "new": {"z": [3]},
        },
    )
    inputs = {id(c) for c in containers(old) + containers(delta)}
    assert not inputs & {id(c) for c in containers(result)}


ERRORS: list[tuple[Any, Any, str, tuple[str | int, ...]]] = [
    (1, [], r"deletion \(\[\]\) can only remove an object key", ()),
    ([1, 2], {"0": []}, r"arrays are shortened with an 'N-' key", (0,)),
    ({}, {"a": []}, "deletes a key the old object does not have", ("a",)),
    ({"a": 1}, {"a": ["1=", 0, 2]}, "text diff applies to a string, not to an integer", ("a",)),
    ("abc", [5, 0, 2], "text diff must be a string, not an integer", ()),
    ("abc", ["", 0, 2], "text diff is empty", ()),
    ("abc", ["4=", 0, 2], "runs past the end of the 3-byte old string", ()),
    ("abc", ["2=2-", 0, 2], "runs past the end of the 3-byte old string", ()),
    ("abc", ["2=", 0, 2], "covers 2 of the old string's 3 bytes", ()),
    ("abc", ["3=2+x", 0, 2], "the 2-byte insertion at byte 4 is not followed by '|'", ()),
    ("abc", ["3=1+xy", 0, 2], "is not followed by '|'", ()),
    ("abc", ["3*", 0, 2], "expected a byte count and one of '=-\\+' at byte 0", ()),
    ("abc", ["3=x", 0, 2], "at byte 2", ()),
    ("abc", ["1=" + "9" * 19 + "=", 0, 2], "expected a byte count", ()),
    ("é", ["1=1-", 0, 2], "splits a UTF-8 character of the old string", ()),
    ("abc", ["3=", 0, 3], r"unknown mode 3 in a 3-item delta array", ()),
    ("abc", ["3=", 0, True], "unknown mode True", ()),
    ("abc", ["3=", 0, 2.0], "unknown mode 2.0", ()),
    ("abc", ["3=", 1, 2], "middle item of a 3-item delta array must be 0, not 1", ()),
    ("abc", ["3=", False, 2], "must be 0, not False", ()),
    (1, [1, 2, 3, 4], "a delta array has 0 to 3 items, this one has 4", ()),
    ([1, 2], {"2": 5}, "array index 2 is out of range for the 2-item array", ()),
    ([1], {"9" * 20: 1}, "is out of range for the 1-item array", ()),
    ([1], {"x": 1}, "key 'x' of an array delta is neither an index nor 'N-'", ()),
    ([1, 2], {"01": 5}, "key '01' of an array delta is neither", ()),
    ([1, 2], {"-1": 5}, "key '-1' of an array delta is neither", ()),
    ([1], {"2-": []}, "key '2-' starts past the end of the 1-item array", ()),
    ([1], {"1-": 5}, "key '1-' must map to an array of items, not an integer", ()),
    ([1, 2], {"1-": [], "2-": []}, "two 'N-' keys: 1- and 2-", ()),
    ([1, 2, 3], {"1-": [], "2": 5}, "patches item 2 but also replaces items from 1 on", ()),
    (5, {"a": 1}, "an object delta patches an object or an array, not an integer", ()),
    ("s", {"0": 1}, "not a string", ()),
    ({}, {"a": {"b": 1}}, "object delta needs an old value, but the key is new", ("a",)),
    ({}, {"a": ["3+abc|", 0, 2]}, "a 3-item delta array needs an old value", ("a",)),
    ({}, {"a": [1, 2]}, "a 2-item delta array needs an old value", ("a",)),
    ({"a": [{"b": "x"}]}, {"a": {"0": {"b": ["5=", 0, 2]}}}, "at /a/0/b: text diff", ("a", 0, "b")),
    ({"a/b": 1, "~": 2}, {"a/b": {"x": 1}}, "at /a~1b: an object delta", ("a/b",)),
    (1, [float("nan")], "nan is not part of a JSON value", ()),
    (1, float("inf"), "inf is not part of a JSON value", ()),
    ({"a": 1}, {1: 2}, "object key 1 is not a string", ()),
    ([1], {1: 2}, "object key 1 is not a string", ()),
    ((1,), {}, r"\(1,\) is not part of a JSON value", ()),
    ({"a": 1}, [{2: 3}], "object key 2", ()),
]


@pytest.mark.parametrize(("old", "delta", "message", "path"), ERRORS)
def test_rejects(old: Any, delta: Any, message: str, path: tuple[str | int, ...]) -> None:
    with pytest.raises(DeltaError, match=message) as info:
        apply_delta(old, delta)
    assert info.value.path == path
    assert isinstance(info.value, PeerbaseError)
    assert isinstance(info.value, ValueError)
    assert "request the full revision" in str(info.value)


def test_rejects_nesting_too_deep_for_python() -> None:
    deep: Any = 1
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(DeltaError, match="nested too deeply"):
        apply_delta(0, [deep])
