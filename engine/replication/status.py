"""Replicator status: activity levels with an explicit transition table, progress, events."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from engine.errors import PeerbaseError

__all__ = [
    "TRANSITIONS",
    "ActivityLevel",
    "DocumentFlags",
    "DocumentReplication",
    "Progress",
    "ReplicatedDocument",
    "ReplicationStatistics",
    "ReplicatorStatus",
]


class ActivityLevel(enum.IntEnum):
    STOPPED = 0
    OFFLINE = 1
    CONNECTING = 2
    IDLE = 3
    BUSY = 4


_A = ActivityLevel
#: Every allowed move of the replicator's activity level; anything else is a bug.
TRANSITIONS: dict[ActivityLevel, frozenset[ActivityLevel]] = {
    _A.STOPPED: frozenset({_A.CONNECTING}),
    _A.CONNECTING: frozenset({_A.BUSY, _A.IDLE, _A.OFFLINE, _A.STOPPED}),
    _A.BUSY: frozenset({_A.IDLE, _A.OFFLINE, _A.STOPPED}),
    _A.IDLE: frozenset({_A.BUSY, _A.OFFLINE, _A.STOPPED}),
    _A.OFFLINE: frozenset({_A.CONNECTING, _A.STOPPED}),
}


class DocumentFlags(enum.IntFlag):
    NONE = 0
    DELETED = 1
    ACCESS_REMOVED = 2


@dataclass(frozen=True, slots=True)
class Progress:
    completed: int = 0
    total: int = 0


@dataclass(frozen=True, slots=True)
class ReplicatorStatus:
    activity: ActivityLevel = ActivityLevel.STOPPED
    progress: Progress = Progress()
    error: PeerbaseError | None = None


@dataclass(frozen=True, slots=True)
class ReplicatedDocument:
    """One document that was pushed or pulled (or failed to be)."""

    id: str
    collection: str
    flags: DocumentFlags = DocumentFlags.NONE
    error: PeerbaseError | None = None
    rev_id: str = ""


@dataclass(frozen=True, slots=True)
class DocumentReplication:
    """A batch of replicated documents in one direction."""

    replicator: Any
    is_push: bool
    documents: tuple[ReplicatedDocument, ...]


@dataclass(slots=True)
class ReplicationStatistics:
    """Counters kept by a replicator or a passive session."""

    docs_pushed: int = 0
    docs_pulled: int = 0
    bytes_pushed: int = 0
    bytes_pulled: int = 0
    deltas_sent: int = 0
    deltas_received: int = 0
    delta_bytes_saved: int = 0
    conflicts_resolved: int = 0
    errors: int = 0
    extra: dict[str, int] = field(default_factory=dict)
