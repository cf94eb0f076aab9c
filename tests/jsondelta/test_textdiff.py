"""The text diff encoder and decoder, and the Myers diff under it."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import assume, given
from hypothesis import strategies as st

from engine.jsondelta.myers import matching_pairs
from engine.jsondelta.textdiff import apply_text_diff, make_text_diff

from .strategies import FAST, mutated, texts


def _lcs_length(a: list[str], b: list[str]) -> int:
    row = [0] * (len(b) + 1)
    for x in a:
        diagonal, row[0] = 0, 0
        for j, y in enumerate(b, 1):
            diagonal, row[j] = row[j], diagonal + 1 if x == y else max(row[j], row[j - 1])
    return row[-1]


small_lists = st.lists(st.sampled_from("abc"), max_size=10)


@FAST
@given(small_lists, small_lists)
def test_myers_finds_a_longest_common_subsequence(a: list[str], b: list[str]) -> None:
    pairs = matching_pairs(a, b, len(a) + len(b))
    assert pairs is not None
    assert all(a[i] == b[j] for i, j in pairs)
    assert all(p[0] < q[0] and p[1] < q[1] for p, q in pairwise(pairs))
    assert len(pairs) == _lcs_length(a, b)
    edits = len(a) + len(b) - 2 * len(pairs)
    assert matching_pairs(a, b, edits) is not None
    if edits:
        assert matching_pairs(a, b, edits - 1) is None


@st.composite
def text_pairs(draw: st.DrawFn) -> tuple[str, str]:
    old = draw(texts)
    new = draw(mutated(old))
    return old, new if isinstance(new, str) else draw(texts)


@FAST
@given(text_pairs())
def test_text_diff_round_trips(pair: tuple[str, str]) -> None:
    old, new = pair
    assume(old or new)  # "" to "" has no patch: an empty one is invalid
    patch = make_text_diff(old, new)
    assert apply_text_diff(old, patch) == new


def test_counts_are_utf8_bytes_and_insertions_whole_characters() -> None:
    assert make_text_diff("a☃b", "a🎉b") == "1=3-4+🎉|1="
    assert apply_text_diff("a☃b", "1=3-4+🎉|1=") == "a🎉b"


def test_insertions_may_contain_the_operator_characters() -> None:
    # From Fleece's cases: the '|' ends an insertion only after its byte count.
    old, new = "ABC+DEF-HIJ=KLM|NOP", "AbC-def+HIJKLM|NOP="
    assert apply_text_diff(old, "1=7-7+bC-def+|3=1-7=1+=|") == new
    assert apply_text_diff(old, make_text_diff(old, new)) == new


def test_short_kept_runs_are_folded_into_changes() -> None:
    # "1=" between two changes costs more than re-inserting the one byte.
    assert make_text_diff("xaxbx", "xcxdx") == "1=3-3+cxd|1="
