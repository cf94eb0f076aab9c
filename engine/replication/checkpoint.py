"""Checkpoints: which sequences are safely done, and the stable checkpoint ID."""

from __future__ import annotations

import base64
import hashlib
from collections import deque
from collections.abc import Hashable
from typing import Any

import orjson

__all__ = ["SequenceTracker", "checkpoint_id", "local_checkpoint_key", "merge_checkpoints"]


class SequenceTracker:
    """Sequences begun in order and finished in any order; `safe` is the checkpoint.

    `safe` is the last sequence of the longest prefix that is entirely finished, so a
    restart from it re-sends nothing already acknowledged before that point.
    """

    __slots__ = ("_done", "_order", "_pending", "safe")

    def __init__(self, start: Any = None) -> None:
        self.safe: Any = start
        self._order: deque[Hashable] = deque()
        self._pending: set[Hashable] = set()
        self._done: set[Hashable] = set()

    def __len__(self) -> int:
        return len(self._pending)

    def begin(self, seq: Hashable) -> None:
        self._order.append(seq)
        self._pending.add(seq)

    def finish(self, seq: Hashable) -> None:
        if seq not in self._pending:
            return
        self._pending.discard(seq)
        self._done.add(seq)
        while self._order and self._order[0] in self._done:
            head = self._order.popleft()
            self._done.discard(head)
            self.safe = head

    def skip(self, seq: Hashable) -> None:
        """A sequence seen and finished at once (nothing to do for it)."""
        self.begin(seq)
        self.finish(seq)

    def pending(self) -> set[Hashable]:
        return set(self._pending)


def checkpoint_id(local_uuid: str, remote_key: str, collection: str, options: Any) -> str:
    """``cp-<base64 sha1>`` of this database, the peer's identity, collection and options."""
    material = orjson.dumps(
        [local_uuid, remote_key, collection, options], option=orjson.OPT_SORT_KEYS
    )
    digest = hashlib.sha1(material, usedforsecurity=False).digest()
    return "cp-" + base64.b64encode(digest).decode()


def local_checkpoint_key(cp_id: str) -> str:
    return f"checkpoint/{cp_id}"


def merge_checkpoints(
    local: dict[str, Any] | None, remote: dict[str, Any] | None
) -> dict[str, Any]:
    """The checkpoint to resume from: where local and peer agree, else the safer (lower) one."""
    local = local or {}
    remote = remote or {}
    out: dict[str, Any] = {}
    for key in ("local", "remote"):
        a, b = local.get(key), remote.get(key)
        if a is None or b is None:
            continue  # one side has nothing: start that direction from scratch
        if a == b:
            out[key] = a
        elif isinstance(a, int) and isinstance(b, int):
            out[key] = min(a, b)
    return out
