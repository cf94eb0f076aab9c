"""Property tests over arbitrary nested JSON: round trips, no mutation, only DeltaError."""

from __future__ import annotations

import copy
import random

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.jsondelta import (
    JSON,
    DeltaError,
    apply_delta,
    create_delta,
    encoded_size,
    json_equal,
)

from .helpers import assert_documented_form, containers
from .randomjson import random_document, random_edit
from .strategies import FAST, fuzz_deltas, json_values, related_pairs

MANY = settings(FAST, max_examples=200)
min_string_diffs = st.sampled_from([0, 60])
# One seed per example: Hypothesis-driven random calls would cost a draw each.
randoms = st.integers(0, 2**32).map(random.Random)


def _check_round_trip(old: JSON, new: JSON, min_string_diff: int) -> None:
    before = copy.deepcopy((old, new))
    delta = create_delta(old, new, min_string_diff=min_string_diff)
    assert json_equal((old, new), before)  # create_delta mutated nothing
    if json_equal(old, new):
        assert delta is None
        return
    assert delta is not None
    assert_documented_form(old, delta)
    assert encoded_size(delta) <= encoded_size([new])  # never worse than sending it whole
    delta_before = copy.deepcopy(delta)
    result = apply_delta(old, orjson.loads(orjson.dumps(delta)))
    assert json_equal(result, new)
    assert json_equal(apply_delta(old, delta), new)
    assert json_equal((old, new), before) and json_equal(delta, delta_before)
    shared = {id(c) for c in containers(old) + containers(delta)}
    assert not shared & {id(c) for c in containers(result)}


@FAST
@given(related_pairs(), min_string_diffs)
def test_round_trip_arbitrary_values(pair: tuple[JSON, JSON], min_string_diff: int) -> None:
    _check_round_trip(*pair, min_string_diff)


@MANY
@given(randoms, min_string_diffs)
def test_round_trip_edited_documents(rng: random.Random, min_string_diff: int) -> None:
    old = random_document(rng)
    _check_round_trip(old, random_edit(rng, old, rng.choice([0.1, 0.3, 0.6])), min_string_diff)


def _apply_or_reject(old: JSON, delta: JSON) -> None:
    before = copy.deepcopy((old, delta))
    try:
        result = apply_delta(old, delta)
    except DeltaError as exc:
        assert str(exc).startswith("at ")
    else:
        orjson.dumps(result)  # a JSON value
    assert json_equal((old, delta), before)


@FAST
@given(json_values, fuzz_deltas)
def test_arbitrary_deltas_apply_or_raise_delta_error(old: JSON, delta: JSON) -> None:
    _apply_or_reject(old, delta)


@MANY
@given(randoms)
def test_damaged_deltas_apply_or_raise_delta_error(rng: random.Random) -> None:
    old = random_document(rng)
    new = random_edit(rng, old)
    delta = create_delta(old, new, min_string_diff=0)
    _apply_or_reject(rng.choice([old, new]), random_edit(rng, delta, 0.5))
