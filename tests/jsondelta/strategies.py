"""Hypothesis strategies for JSON values as orjson returns them, related pairs and bad deltas."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from engine.jsondelta import JSON

#: Deterministic, quick: the whole suite stays well under 5 s.
FAST = settings(
    deadline=None,
    max_examples=50,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# Long strings are drawn whole (cheap) so that edits of them make text diffs worth sending.
SENTENCES = [
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.",
    "Über den Wolken muss die Freiheit wohl grenzenlos sein ☃ — 雪だるま 🎉 and a \"quote\".",
    "line one\nline two\nline three\twith a tab, \\ a backslash and \u0001 a control char",
]
# orjson never returns lone surrogates, NaN, infinities or ints outside 64 bits.
_chars = st.characters(exclude_categories=("Cs",))
texts = st.text(_chars, max_size=8) | st.text("ab é\n☃|", max_size=8)
keys = st.sampled_from(["a", "b", "c", "0", "1-", "~/", ""]) | st.text(_chars, max_size=3)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.sampled_from([0, 1, -1, 0.0, -0.0, 1.0, True, False])
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
    | st.sampled_from(SENTENCES)
)
json_values: st.SearchStrategy[JSON] = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=14,
)


@st.composite
def mutated(draw: st.DrawFn, value: JSON) -> JSON:
    """A value like `value`: the same, edited in places, or something else entirely."""
    choice = draw(st.integers(0, 9))
    if choice == 0:
        return value
    if choice == 1:
        return draw(json_values)
    if isinstance(value, dict):
        out: dict[str, JSON] = {}
        for key, item in value.items():
            fate = draw(st.integers(0, 5))
            if fate in (1, 2):
                out[key] = draw(mutated(item))
            elif fate != 0:
                out[key] = item
        for key in draw(st.lists(keys, max_size=2)):
            out[key] = draw(json_values)
        return out
    if isinstance(value, list):
        items = [draw(mutated(item)) if draw(st.integers(0, 2)) == 0 else item for item in value]
        if draw(st.integers(0, 2)) == 0:
            items = items[: draw(st.integers(0, len(items)))]
        front = draw(st.lists(json_values, max_size=1)) if draw(st.integers(0, 3)) == 0 else []
        return front + items + draw(st.lists(json_values, max_size=2))
    if isinstance(value, str):
        start = draw(st.integers(0, len(value)))
        end = draw(st.integers(start, min(len(value), start + 8)))
        return value[:start] + draw(st.text(_chars, max_size=6)) + value[end:]
    return draw(scalars)


@st.composite
def related_pairs(draw: st.DrawFn) -> tuple[JSON, JSON]:
    """An old value and a new value that is often a small edit of it."""
    records = st.lists(st.dictionaries(keys, scalars, max_size=4), min_size=1, max_size=4)
    old = draw(st.dictionaries(keys, json_values | records, min_size=1, max_size=5) | json_values)
    return old, draw(mutated(old))


_patch_texts = st.text("0123456789=+-|aé", max_size=12)
_array_keys = st.sampled_from(["0", "1", "2", "0-", "1-", "3-", "01", "-1", "x", "9" * 20])
_three_item_arrays = st.tuples(
    _patch_texts | json_values,
    st.sampled_from([0, 1, 0.0, False]),
    st.sampled_from([0, 2, 3, 2.0, True]),
).map(list)
_delta_shapes: st.SearchStrategy[Any] = st.one_of(
    st.lists(json_values, max_size=4),
    _three_item_arrays,
    st.dictionaries(_array_keys, json_values, max_size=3),
)

#: Arbitrary JSON, plus values shaped like deltas that often do not fit.
fuzz_deltas: st.SearchStrategy[JSON] = st.recursive(
    json_values | _delta_shapes,
    lambda inner: st.dictionaries(keys | _array_keys, inner, max_size=4),
    max_leaves=12,
)
