"""What a listener reports: connections opened/closed, replication directions, refusals.

Every event has ``to_dict()``: a JSON-ready object whose ``"event"`` key names it.
Directions are the peer's: ``"push"`` (it sends us documents: ``changes``,
``proposeChanges``, ``rev``) and ``"pull"`` (it subscribed with ``subChanges``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

__all__ = [
    "CertificateInfo",
    "ConnectionClosed",
    "ConnectionOpened",
    "ConnectionRefused",
    "EventCallback",
    "EventHub",
    "EventToken",
    "IdentityExpiring",
    "ListenerEvent",
    "ReplicationDirection",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CertificateInfo:
    """A client certificate: subject (RFC 4514) and SHA-256 fingerprint of its DER."""

    subject: str
    fingerprint: str


@dataclass(frozen=True)
class ListenerEvent:
    """Base of listener events."""

    name: ClassVar[str] = "event"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"event": self.name}
        for key, value in asdict(self).items():
            out[key] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass(frozen=True)
class ConnectionOpened(ListenerEvent):
    """A peer passed the handshake (path, subprotocol, TLS and authentication)."""

    name: ClassVar[str] = "connection-opened"
    connection_id: int
    peer_address: str
    user: str | None = None
    certificate: CertificateInfo | None = None


@dataclass(frozen=True)
class ReplicationDirection(ListenerEvent):
    """A connection started replicating in a direction (reported once per direction)."""

    name: ClassVar[str] = "replication"
    connection_id: int
    peer_address: str
    direction: str  # "push" or "pull", seen from the peer


@dataclass(frozen=True)
class ConnectionClosed(ListenerEvent):
    """A connection ended; ``directions`` are those it used, ``by_peer`` who closed it."""

    name: ClassVar[str] = "connection-closed"
    connection_id: int
    peer_address: str
    user: str | None = None
    certificate: CertificateInfo | None = None
    directions: tuple[str, ...] = ()
    code: int | None = None
    reason: str = ""
    by_peer: bool | None = None
    docs_received: int = 0  # documents the peer pushed to us
    docs_sent: int = 0  # documents the peer pulled from us


@dataclass(frozen=True)
class ConnectionRefused(ListenerEvent):
    """A handshake was answered with an HTTP error (bad path, credentials, subprotocol)."""

    name: ClassVar[str] = "connection-refused"
    peer_address: str
    status: int
    reason: str
    path: str = ""


@dataclass(frozen=True)
class IdentityExpiring(ListenerEvent):
    """The listener's TLS identity expires within 30 days."""

    name: ClassVar[str] = "identity-expiring"
    label: str
    expiration: str
    message: str

    @classmethod
    def of(cls, label: str, expiration: dt.datetime, message: str) -> IdentityExpiring:
        return cls(label, expiration.isoformat(), message)


EventCallback = Callable[[ListenerEvent], None]


@dataclass(eq=False)
class EventToken:
    """Returned by ``add_event_listener``; ``remove()`` unsubscribes."""

    hub: EventHub
    callback: EventCallback = field(repr=False)

    def remove(self) -> None:
        self.hub.remove(self.callback)


class EventHub:
    """Fans events out to callbacks; a failing callback is logged, never propagated."""

    def __init__(self) -> None:
        self._callbacks: list[EventCallback] = []

    def add(self, callback: EventCallback) -> EventToken:
        self._callbacks.append(callback)
        return EventToken(self, callback)

    def remove(self, callback: EventCallback) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, event: ListenerEvent) -> None:
        log.debug("listener event %s", event)
        for callback in list(self._callbacks):
            try:
                callback(event)
            except Exception:
                log.exception("listener event callback %r failed", callback)

    async def stream(self) -> AsyncIterator[ListenerEvent]:
        """Every event from now on, until the consumer stops iterating."""
        queue: asyncio.Queue[ListenerEvent] = asyncio.Queue()
        token = self.add(queue.put_nowait)
        try:
            while True:
                yield await queue.get()
        finally:
            token.remove()
