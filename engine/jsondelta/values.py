"""JSON values as orjson returns them: type-strict equality, kinds and encoded sizes."""

from __future__ import annotations

import math
from typing import TypeAlias

import orjson

__all__ = ["JSON", "describe", "encoded_size", "json_equal", "kind"]

JSON: TypeAlias = "dict[str, JSON] | list[JSON] | str | int | float | bool | None"


# bool before int: bool is a subclass of int.
_KINDS: tuple[tuple[type, str], ...] = (
    (bool, "boolean"),
    (int, "integer"),
    (float, "float"),
    (str, "string"),
    (list, "array"),
    (dict, "object"),
)


def kind(value: object) -> str:
    """Name the JSON type of `value`: null, boolean, integer, float, string, array or object."""
    if value is None:
        return "null"
    for cls, name in _KINDS:
        if isinstance(value, cls):
            return name
    return type(value).__name__


def describe(value: object) -> str:
    """The kind of `value` with its article, for messages: "an integer", "a string", "null"."""
    name = kind(value)
    if name == "null":
        return name
    return f"an {name}" if name[0] in "aeiou" else f"a {name}"


def json_equal(a: object, b: object) -> bool:
    """Compare as JSON text would: True != 1 != 1.0, 0.0 != -0.0, dict order ignored."""
    ka = kind(a)
    if ka != kind(b):
        return False
    if isinstance(a, float) and isinstance(b, float):
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(v, b[k]) for k, v in a.items())
    return a == b


def encoded_size(value: JSON) -> int:
    """Bytes of `value` as compact JSON (what `orjson.dumps` sends on the wire)."""
    return len(orjson.dumps(value))
