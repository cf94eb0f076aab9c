"""Test helpers: the fixture files and a checker of the delta forms our encoder may emit."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson

from engine.jsondelta import JSON

DATA = Path(__file__).parent / "data"


def load(name: str) -> Any:
    """A JSON fixture from tests/jsondelta/data."""
    return orjson.loads((DATA / name).read_bytes())


def assert_documented_form(old: JSON, delta: JSON, *, top: bool = True) -> None:
    """Fail unless `delta` uses only forms of Deltas.md (plus Fleece's array-as-object patches).

    Our encoder must not emit JsonDiffPatch's [old, new] or [old, 0, 0], which only the
    decoder accepts, nor bare values at the top level (Fleece always wraps them).
    """
    if isinstance(delta, list):
        assert len(delta) in (1, 3), f"unexpected delta array {delta!r}"
        if len(delta) == 3:
            assert isinstance(old, str) and isinstance(delta[0], str) and delta[0]
            assert type(delta[1]) is int and delta[1] == 0
            assert type(delta[2]) is int and delta[2] == 2
        return
    if isinstance(delta, dict):
        assert delta, "an empty object delta means 'no change'; create_delta returns None then"
        if isinstance(old, dict):
            for key, change in delta.items():
                if key not in old:
                    assert not isinstance(change, dict), "a new key needs [value] or a scalar"
                    assert not (isinstance(change, list) and len(change) != 1)
                elif change != []:
                    assert_documented_form(old[key], change, top=False)
            return
        assert isinstance(old, list), f"object delta for {old!r}"
        tails = [key for key in delta if key.endswith("-")]
        assert len(tails) <= 1
        end = int(tails[0][:-1]) if tails else len(old)
        for key, change in delta.items():
            assert re.fullmatch(r"0|[1-9][0-9]*-?", key), key
            if key in tails:
                assert isinstance(change, list) and end <= len(old)
            else:
                assert int(key) < end
                assert change != [], "array items are never deleted with []"
                assert_documented_form(old[int(key)], change, top=False)
        return
    assert not top, "top-level replacements are wrapped as [value]"


def containers(value: object) -> list[object]:
    """Every list and dict inside `value`, itself included."""
    found: list[object] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            found.append(item)
            stack.extend(item)
        elif isinstance(item, dict):
            found.append(item)
            stack.extend(item.values())
    return found
