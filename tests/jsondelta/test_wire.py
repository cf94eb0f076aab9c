"""Deltas two real Couchbase Lite 3.2.4 peers sent each other (data/cbl-3.2.4-delta-session.json).

Extracted from /work/shared/vectors/cbl-3.2.4-sessions/delta.jsonl, README section "8. delta":
doc "big" at revs 1-3654…, 2-0f34… and 3-9e4f…, and the `rev` bodies sent with `deltaSrc`.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from engine.jsondelta import apply_delta, create_delta, encoded_size, json_equal

from .helpers import load

SESSION: dict[str, Any] = load("cbl-3.2.4-delta-session.json")
STEPS = [0, 1]


def test_fixture_holds_the_deltas_quoted_in_the_readme() -> None:
    assert SESSION["deltas"] == [
        {"n": 2, "items": {"7": {"name": "item seven (client edit)"}}},
        {"n": 3, "items": {"20": {"qty": 9999}}},
    ]
    assert len(orjson.dumps(SESSION["deltas"][0])) == 57  # the README's "57-byte body"


@pytest.mark.parametrize("step", STEPS)
def test_wire_delta_applies(step: int) -> None:
    old, new = SESSION["revisions"][step], SESSION["revisions"][step + 1]
    assert json_equal(apply_delta(old, SESSION["deltas"][step]), new)


@pytest.mark.parametrize("step", STEPS)
def test_we_create_the_same_delta_as_couchbase_lite(step: int) -> None:
    old, new = SESSION["revisions"][step], SESSION["revisions"][step + 1]
    delta = create_delta(old, new)
    assert json_equal(delta, SESSION["deltas"][step])
    assert encoded_size(delta) < encoded_size(new) // 50
