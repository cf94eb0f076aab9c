"""Replication errors, split into transient (retried with backoff) and permanent::

PeerbaseError
 └── ReplicationError              domain, code, message; `transient` says retry or stop
      ├── TransientError           connection refused/reset/timed out, DNS, HTTP 408/429/
      │                            502/503/504, WebSocket 1006 and 4001
      └── PermanentError
           ├── AuthenticationError      HTTP 401
           ├── ForbiddenError           HTTP/BLIP 403 (e.g. a read-only listener)
           ├── RemoteNotFoundError      HTTP 404 (no such database)
           ├── CertificateError         TLS handshake or certificate check failed
           ├── ClosedByPeerError        the peer closed the connection (WebSocket 1001)
           └── ProtocolError            the peer broke the replication protocol
"""

from __future__ import annotations

from engine.errors import PeerbaseError

__all__ = [
    "AuthenticationError",
    "CertificateError",
    "ClosedByPeerError",
    "ForbiddenError",
    "PermanentError",
    "ProtocolError",
    "RemoteNotFoundError",
    "ReplicationError",
    "TransientError",
]


class ReplicationError(PeerbaseError):
    """A replication failed; `domain`/`code` follow Couchbase Lite (HTTP, WebSocket, ...)."""

    transient = False

    def __init__(
        self,
        message: str,
        *,
        domain: str = "Replication",
        code: int = 0,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.domain = domain
        self.code = code


class TransientError(ReplicationError):
    """A failure that may go away: the replicator retries with backoff."""

    transient = True
    hint = "the replicator retries automatically"


class PermanentError(ReplicationError):
    """A failure retrying cannot fix: the replicator stops."""


class AuthenticationError(PermanentError):
    hint = "check the user name and password (or client certificate)"


class ForbiddenError(PermanentError):
    hint = "the peer does not allow this (e.g. pushing to a read-only listener)"


class RemoteNotFoundError(PermanentError):
    hint = "check the database name at the end of the URL"


class CertificateError(PermanentError):
    hint = "check the pinned certificate or the peer's TLS identity"


class ClosedByPeerError(PermanentError):
    hint = "the peer stopped; start the replicator again when it is back"


class ProtocolError(PermanentError):
    hint = "the peer does not speak the Couchbase Mobile 3 replication protocol correctly"
