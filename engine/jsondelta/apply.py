"""Applying a Fleece JSON delta (Deltas.md in couchbase/fleece) to the value it was made from."""

from __future__ import annotations

import math
import re

from engine.jsondelta.errors import DeltaError, Path
from engine.jsondelta.textdiff import apply_text_diff
from engine.jsondelta.values import JSON, describe

__all__ = ["apply_delta"]

# Third item of a 3-item delta array, after JsonDiffPatch (Fleece's JSONDelta.cc decodes both).
DELETION_MODE = 0
TEXT_DIFF_MODE = 2

# Keys of an object delta patching an array: "7" patches item 7, "5-" replaces items 5.. with
# the array it maps to (how Fleece encodes appends and truncations).
_ARRAY_KEY = re.compile(r"(0|[1-9][0-9]*)(-?)")


def apply_delta(old: JSON, delta: JSON) -> JSON:
    """Return `old` patched by `delta` as a new value sharing nothing with either input."""
    try:
        return _patch(old, delta, ())
    except RecursionError:
        raise DeltaError("the value or the delta is nested too deeply") from None


def _patch(old: JSON, delta: JSON, path: Path) -> JSON:
    if isinstance(delta, list):
        if _is_deletion(delta, path):
            raise DeltaError(
                "a deletion ([]) can only remove an object key; "
                "arrays are shortened with an 'N-' key",
                path=path,
            )
        if len(delta) == 1:  # [newValue]
            return _copy(delta[0], path)
        if len(delta) == 2:  # JsonDiffPatch [oldValue, newValue], still decoded by Fleece
            return _copy(delta[1], path)
        if len(delta) == 3:  # [patch, 0, 2]; _is_deletion checked the mode
            return _patch_text(old, delta[0], path)
        raise DeltaError(f"a delta array has 0 to 3 items, this one has {len(delta)}", path=path)
    if isinstance(delta, dict):
        if isinstance(old, dict):
            return _patch_object(old, delta, path)
        if isinstance(old, list):
            return _patch_array(old, delta, path)
        if not delta:  # Fleece's "no change" delta
            return _copy(old, path)
        raise DeltaError(
            f"an object delta patches an object or an array, not {describe(old)}", path=path
        )
    return _copy(delta, path)


def _is_deletion(delta: JSON, path: Path) -> bool:
    """Is `delta` `[]` (or JsonDiffPatch's `[old, 0, 0]`)? Also validates 3-item arrays."""
    if not isinstance(delta, list):
        return False
    if not delta:
        return True
    if len(delta) != 3:
        return False
    middle, mode = delta[1], delta[2]
    if type(middle) is not int or middle != 0:
        raise DeltaError(
            f"the middle item of a 3-item delta array must be 0, not {middle!r}", path=path
        )
    if type(mode) is not int or mode not in (DELETION_MODE, TEXT_DIFF_MODE):
        raise DeltaError(
            f"unknown mode {mode!r} in a 3-item delta array "
            f"({TEXT_DIFF_MODE} = text diff, {DELETION_MODE} = deletion)",
            path=path,
        )
    return mode == DELETION_MODE


def _patch_text(old: JSON, patch: JSON, path: Path) -> str:
    if not isinstance(old, str):
        raise DeltaError(f"a text diff applies to a string, not to {describe(old)}", path=path)
    if not isinstance(patch, str):
        raise DeltaError(f"a text diff must be a string, not {describe(patch)}", path=path)
    return apply_text_diff(old, patch, path)


def _patch_object(old: dict[str, JSON], delta: dict[str, JSON], path: Path) -> JSON:
    result: dict[str, JSON] = {}
    for key, value in old.items():
        where = (*path, _key(key, path))
        if key not in delta:
            result[key] = _copy(value, where)
        elif not _is_deletion(delta[key], where):
            result[key] = _patch(value, delta[key], where)
    for key, change in delta.items():
        if _key(key, path) not in old:
            result[key] = _insert(change, (*path, key))
    return result


def _insert(delta: JSON, path: Path) -> JSON:
    """The value of a key the old object lacks: a scalar, or `[newValue]`."""
    if isinstance(delta, list):
        if len(delta) == 1:
            return _copy(delta[0], path)
        if not delta:
            raise DeltaError("the delta deletes a key the old object does not have", path=path)
        raise DeltaError(
            f"a {len(delta)}-item delta array needs an old value, but the key is new", path=path
        )
    if isinstance(delta, dict):
        raise DeltaError(
            "an object delta needs an old value, but the key is new "
            "(a new object or array is inserted as [value])",
            path=path,
        )
    return _copy(delta, path)


def _patch_array(old: list[JSON], delta: dict[str, JSON], path: Path) -> JSON:
    patches: dict[int, JSON] = {}
    tail: tuple[int, list[JSON]] | None = None
    for key, change in delta.items():
        match = _ARRAY_KEY.fullmatch(_key(key, path))
        if match is None:
            raise DeltaError(
                f"key {key!r} of an array delta is neither an index nor 'N-'", path=path
            )
        digits, dash = match[1], match[2]
        index = int(digits) if len(digits) <= 18 else len(old) + 1
        if dash:
            if tail is not None:
                raise DeltaError(f"array delta has two 'N-' keys: {tail[0]}- and {key}", path=path)
            if index > len(old):
                raise DeltaError(
                    f"array delta key {key!r} starts past the end of the {len(old)}-item array",
                    path=path,
                )
            if not isinstance(change, list):
                raise DeltaError(
                    f"array delta key {key!r} must map to an array of items, "
                    f"not {describe(change)}",
                    path=path,
                )
            tail = (index, change)
        elif index >= len(old):
            raise DeltaError(
                f"array index {key} is out of range for the {len(old)}-item array", path=path
            )
        else:
            patches[index] = change
    end = len(old) if tail is None else tail[0]
    clash = [i for i in patches if i >= end]
    if clash:
        raise DeltaError(
            f"array delta patches item {min(clash)} but also replaces items from {end} on",
            path=path,
        )
    result: list[JSON] = []
    for index in range(end):
        where = (*path, index)
        if index in patches:
            result.append(_patch(old[index], patches[index], where))
        else:
            result.append(_copy(old[index], where))
    if tail is not None:
        result.extend(_copy(item, (*path, end + i)) for i, item in enumerate(tail[1]))
    return result


def _key(key: object, path: Path) -> str:
    if not isinstance(key, str):
        raise DeltaError(f"object key {key!r} is not a string", path=path)
    return key


def _copy(value: JSON, path: Path) -> JSON:
    try:
        return _clone(value)
    except _NotJSON as exc:
        raise DeltaError(f"{exc.args[0]} is not part of a JSON value", path=path) from None


class _NotJSON(Exception):
    """Raised by _clone; _copy turns it into a DeltaError with the path."""


def _clone(value: JSON) -> JSON:
    if isinstance(value, dict):
        copy: dict[str, JSON] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise _NotJSON(f"object key {k!r}")
            copy[k] = _clone(v)
        return copy
    if isinstance(value, list):
        return [_clone(v) for v in value]
    if value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise _NotJSON(repr(value))
