"""Creating compact Fleece JSON deltas (Deltas.md in couchbase/fleece)."""

from __future__ import annotations

import math

import orjson

from engine.jsondelta.textdiff import make_text_diff
from engine.jsondelta.values import JSON, encoded_size, json_equal

__all__ = ["MIN_STRING_DIFF", "create_delta"]

#: Shortest new string (UTF-8 bytes) worth a text diff: Fleece's JSONDelta::gMinStringDiffLength.
MIN_STRING_DIFF = 60

# A delta and the length of its compact JSON encoding.
_Sized = tuple[JSON, int]


def create_delta(old: JSON, new: JSON, *, min_string_diff: int = MIN_STRING_DIFF) -> JSON | None:
    """Return a delta turning `old` into `new`, or None if equal; it may share parts of `new`.

    Raises TypeError, like `orjson.dumps`, for values orjson cannot encode (such as nesting
    255 levels deep).
    """
    try:
        found = _Differ(min_string_diff).diff(old, new, nested=False)
    except RecursionError:
        raise TypeError("value nested too deeply to encode as JSON") from None
    return None if found is None else found[0]


class _Differ:
    """Picks, value by value, the shortest encoding the format allows."""

    def __init__(self, min_string_diff: int) -> None:
        self.min_string_diff = min_string_diff

    def diff(self, old: JSON, new: JSON, *, nested: bool) -> _Sized | None:
        """The shortest delta from `old` to `new`, or None if they are equal."""
        patch: _Sized | None = None
        if isinstance(old, dict) and isinstance(new, dict):
            patch = self._object(old, new)
            if patch is None:
                return None
        elif isinstance(old, list) and isinstance(new, list):
            patch = self._array(old, new)
            if patch is None:
                return None
        elif isinstance(old, str) and isinstance(new, str):
            if old == new:
                return None
            patch = self._text(old, new)
        elif json_equal(old, new):
            return None
        whole = _replacement(new, nested=nested)
        return patch if patch is not None and patch[1] < whole[1] else whole

    def _object(self, old: dict[str, JSON], new: dict[str, JSON]) -> _Sized | None:
        entries: dict[str, _Sized] = {}
        for key, value in new.items():
            if key not in old:
                entries[key] = _replacement(value, nested=True)
            else:
                found = self.diff(old[key], value, nested=True)
                if found is not None:
                    entries[key] = found
        for key in old:
            if key not in new:
                entries[key] = ([], 2)  # Deltas.md: "[ ] — The value is deleted."
        return _object_delta(entries) if entries else None

    def _array(self, old: list[JSON], new: list[JSON]) -> _Sized | None:
        # Fleece patches arrays as objects: "i" patches item i, "k-" replaces items k.. with
        # an array (JSONDelta.cc _patchArray). Keep the cut k whose delta is shortest.
        common = min(len(old), len(new))
        items = [self.diff(old[i], new[i], nested=True) for i in range(common)]
        if len(old) == len(new) and all(item is None for item in items):
            return None
        tail_bytes = [0] * (len(new) + 1)
        for i in range(len(new) - 1, -1, -1):
            tail_bytes[i] = tail_bytes[i + 1] + encoded_size(new[i]) + 1
        best_cut, best_size, prefix = common, math.inf, 0
        for cut in range(common + 1):
            size = prefix
            if not cut == len(old) == len(new):
                size += _key_size(f"{cut}-") + max(tail_bytes[cut] + 1, 2) + 1
            if size <= best_size:
                best_cut, best_size = cut, size
            item = items[cut] if cut < common else None
            if item is not None:
                prefix += _key_size(str(cut)) + item[1] + 1
        entries = {str(i): item for i, item in enumerate(items[:best_cut]) if item is not None}
        if not best_cut == len(old) == len(new):
            tail = new[best_cut:]
            entries[f"{best_cut}-"] = (tail, encoded_size(tail))
        return _object_delta(entries)

    def _text(self, old: str, new: str) -> _Sized | None:
        if len(new.encode("utf-8")) < self.min_string_diff:
            return None
        delta: JSON = [make_text_diff(old, new), 0, 2]  # Deltas.md: ["patch", 0, 2]
        return delta, encoded_size(delta)


def _replacement(new: JSON, *, nested: bool) -> _Sized:
    # Deltas.md: `[ newValue ]` disambiguates arrays and objects; like Fleece, the top level is
    # always wrapped.
    if nested and not isinstance(new, list | dict):
        return new, encoded_size(new)
    return [new], encoded_size(new) + 2


def _key_size(key: str) -> int:
    return len(orjson.dumps(key)) + 1  # with the ':'


def _object_delta(entries: dict[str, _Sized]) -> _Sized:
    size = 1 + sum(_key_size(key) + item[1] + 1 for key, item in entries.items())
    return {key: item[0] for key, item in entries.items()}, max(size, 2)
