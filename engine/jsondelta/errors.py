"""The delta error, hung under :class:`engine.errors.PeerbaseError`::

    PeerbaseError
     └── DeltaError      a JSON delta is malformed or does not fit its base (also ValueError)
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.errors import PeerbaseError

__all__ = ["DeltaError", "Path", "format_path"]

#: Where in a value something is: dict keys and array indexes from the top.
Path = tuple[str | int, ...]


def format_path(path: Sequence[str | int]) -> str:
    """Render `path` as a JSON Pointer (RFC 6901), or "the top level" for the root."""
    if not path:
        return "the top level"
    parts = (str(p).replace("~", "~0").replace("/", "~1") for p in path)
    return "/" + "/".join(parts)


class DeltaError(PeerbaseError, ValueError):
    """A JSON delta is malformed, or does not fit the value it is applied to."""

    hint = "request the full revision instead of a delta"

    def __init__(self, message: str, *, path: Path = ()) -> None:
        super().__init__(f"at {format_path(path)}: {message}")
        #: Where in the old value the delta failed.
        self.path = path
