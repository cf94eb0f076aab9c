"""Fleece's own delta cases: data/json-delta.json, copied from /work/shared/vectors."""

from __future__ import annotations

from typing import Any

import pytest

from engine.jsondelta import DeltaError, apply_delta, create_delta, encoded_size, json_equal

from .helpers import assert_documented_form, load

CASES: list[dict[str, Any]] = load("json-delta.json")["cases"]
IDS = [f"case{i}" for i in range(len(CASES))]


def test_the_vectors_cover_every_form() -> None:
    deltas = [case["fleece_delta"] for case in CASES]
    assert any(d is None for d in deltas)
    assert any(isinstance(d, list) and len(d) == 3 for d in deltas)  # text diff
    assert any(isinstance(d, dict) and any(k.endswith("-") for k in d) for d in deltas)
    assert any(isinstance(d, list) and d == [[]] for d in deltas)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_fleece_delta_applies_exactly(case: dict[str, Any]) -> None:
    old, new, delta = case["old"], case["new"], case["fleece_delta"]
    if delta is None:
        assert json_equal(old, new)
    else:
        assert json_equal(apply_delta(old, delta), new)


@pytest.mark.parametrize("min_string_diff", [0, 60])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_our_delta_round_trips(case: dict[str, Any], min_string_diff: int) -> None:
    old, new = case["old"], case["new"]
    delta = create_delta(old, new, min_string_diff=min_string_diff)
    assert (delta is None) == (case["fleece_delta"] is None)
    if delta is not None:
        assert json_equal(apply_delta(old, delta), new)
        assert_documented_form(old, delta)


@pytest.mark.parametrize(
    "case",
    [case for case in CASES if case["fleece_delta"] is not None],
)
def test_our_delta_is_no_larger_than_fleeces(case: dict[str, Any]) -> None:
    # Fleece's tests made these with text diffs for short strings too, hence min_string_diff=0.
    ours = create_delta(case["old"], case["new"], min_string_diff=0)
    assert encoded_size(ours) <= encoded_size(case["fleece_delta"])


def test_deltas_md_examples() -> None:
    # Deltas.md, "Examples": the first and the third. (The second contradicts itself: its new
    # value has "title": "Col.", its delta inserts "Maj.".)
    old = {"age": 8, "grade": 3, "name": {"first": "Bobby", "last": "Briggs"}}
    new = {"age": 18, "name": {"first": "Robert", "last": "Briggs"}}
    delta = {"age": 18, "grade": [], "name": {"first": "Robert"}}
    assert json_equal(apply_delta(old, delta), new)
    assert create_delta(old, new) == delta
    fog, dog = "The fog comes in on little cat feet", "The dog comes in on little cat feet"
    assert apply_delta(fog, ["4=1-1+d|30=", 0, 2]) == dog
    assert create_delta(fog, dog, min_string_diff=0) == ["4=1-1+d|30=", 0, 2]


def test_deltas_md_fog_example_is_one_byte_long() -> None:
    # Deltas.md gives ["4=1-1+d|31=",0,2], but 4 + 1 + 31 = 36 bytes of a 35-byte string;
    # Fleece's own decoder rejects that too ("Invalid length in text delta").
    with pytest.raises(DeltaError, match="runs past the end of the 35-byte old string"):
        apply_delta("The fog comes in on little cat feet", ["4=1-1+d|31=", 0, 2])
