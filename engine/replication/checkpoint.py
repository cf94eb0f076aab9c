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
    restart from it re-sends nothing already acknowledged before that point. A sequence
    may be begun several times (a document's branches share its sequence); it is
    finished when every one of them is.
    """

    __slots__ = ("_order", "_pending", "safe")

    def __init__(self, start: Any = None) -> None:
        self.safe: Any = start
        self._order: deque[Hashable] = deque()
        self._pending: dict[Hashable, int] = {}

    def __len__(self) -> int:
        return sum(1 for count in self._pending.values() if count)

    def begin(self, seq: Hashable) -> None:
        count = self._pending.get(seq)
        if count is None:
            self._order.append(seq)
            self._pending[seq] = 1
        else:
            self._pending[seq] = count + 1

    def finish(self, seq: Hashable) -> None:
        count = self._pending.get(seq)
        if count is None:
            return
        if count > 1:
            self._pending[seq] = count - 1
            return
        self._pending[seq] = 0
        while self._order and self._pending.get(self._order[0]) == 0:
            head = self._order.popleft()
            del self._pending[head]
            self.safe = head

    def skip(self, seq: Hashable) -> None:
        """A sequence seen and finished at once (nothing to do for it)."""
        if not self._order:  # nothing pending before it: it is the checkpoint at once
            self.safe = seq
            return
        self.begin(seq)
        self.finish(seq)

    def pending(self) -> set[Hashable]:
        return {seq for seq, count in self._pending.items() if count}


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
