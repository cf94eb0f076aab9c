"""Fleece JSON deltas: the `rev` bodies of Couchbase Lite delta sync (Deltas.md in fleece)."""

from __future__ import annotations

from engine.jsondelta.apply import apply_delta
from engine.jsondelta.create import MIN_STRING_DIFF, create_delta
from engine.jsondelta.errors import DeltaError
from engine.jsondelta.values import JSON, encoded_size, json_equal

__all__ = [
    "JSON",
    "MIN_STRING_DIFF",
    "DeltaError",
    "apply_delta",
    "create_delta",
    "encoded_size",
    "json_equal",
]
