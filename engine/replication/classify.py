"""Map whatever went wrong to a transient or permanent ReplicationError."""

from __future__ import annotations

import socket
import ssl

from websockets.exceptions import InvalidHandshake, InvalidStatus

from engine.blip import BlipError, ConnectionClosedError
from engine.errors import DatabaseBusyError, PeerbaseError
from engine.replication.errors import (
    AuthenticationError,
    CertificateError,
    ClosedByPeerError,
    ForbiddenError,
    PermanentError,
    ProtocolError,
    RemoteNotFoundError,
    ReplicationError,
    TransientError,
)

__all__ = ["classify"]

TRANSIENT_HTTP = frozenset({408, 429, 500, 502, 503, 504})
TRANSIENT_WS = frozenset({1006, 1011, 1012, 1013, 4001})


def classify(exc: BaseException) -> ReplicationError:
    """The ReplicationError for `exc`: transient ones are retried, permanent ones stop."""
    if isinstance(exc, ReplicationError):
        return exc
    if isinstance(exc, InvalidStatus):
        return _http(exc.response.status_code, exc.response.reason_phrase or "")
    if isinstance(exc, ConnectionClosedError):
        return _closed(exc)
    if isinstance(exc, BlipError):
        return _blip(exc)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return CertificateError(f"TLS certificate rejected: {exc}", domain="TLS", code=1)
    if isinstance(exc, ssl.SSLError):
        return CertificateError(f"TLS handshake failed: {exc}", domain="TLS", code=2)
    if _is_tls_error(exc):
        return CertificateError(str(exc), domain="TLS", code=3)
    if isinstance(exc, socket.gaierror):
        return TransientError(f"cannot resolve host name: {exc}", domain="DNS", code=exc.errno or 0)
    if isinstance(exc, (TimeoutError, ConnectionError, OSError, InvalidHandshake, EOFError)):
        text = str(exc) or type(exc).__name__
        return TransientError(
            f"network error: {text}", domain="Network", code=getattr(exc, "errno", 0) or 0
        )
    if isinstance(exc, DatabaseBusyError):
        err: ReplicationError = TransientError(str(exc), domain="Local")
        err.__cause__ = exc
        return err
    if isinstance(exc, PeerbaseError):
        err = PermanentError(str(exc), domain="Local")
        err.__cause__ = exc
        return err
    return PermanentError(f"unexpected error: {exc!r}", domain="Local")


def _http(status: int, reason: str) -> ReplicationError:
    text = f"HTTP {status} {reason}".strip()
    if status == 401:
        return AuthenticationError(f"authentication failed ({text})", domain="WebSocket", code=401)
    if status == 403:
        return ForbiddenError(f"access forbidden ({text})", domain="WebSocket", code=403)
    if status == 404:
        return RemoteNotFoundError(
            f"no such database on the peer ({text})", domain="WebSocket", code=404
        )
    if status in TRANSIENT_HTTP or status >= 500:
        return TransientError(
            f"peer temporarily unavailable ({text})", domain="WebSocket", code=status
        )
    return PermanentError(
        f"the peer refused the connection ({text})", domain="WebSocket", code=status
    )


def _closed(exc: ConnectionClosedError) -> ReplicationError:
    code = exc.close_code if exc.close_code is not None else 1006
    if code in TRANSIENT_WS or (code == 1001 and not exc.by_peer):
        return TransientError(f"connection lost ({exc})", domain="WebSocket", code=code)
    if code in (1000, 1001):
        return ClosedByPeerError("connection closed by peer", domain="WebSocket", code=1001)
    return ProtocolError(f"connection closed with error: {exc}", domain="WebSocket", code=code)


def _blip(exc: BlipError) -> ReplicationError:
    if exc.code == 401:
        return AuthenticationError(str(exc), domain=exc.domain, code=401)
    if exc.code == 403:
        return ForbiddenError(str(exc), domain=exc.domain, code=403)
    if exc.code == 404 and exc.domain == "HTTP":
        return RemoteNotFoundError(str(exc), domain=exc.domain, code=404)
    return ProtocolError(
        f"the peer answered with an error: {exc}", domain=exc.domain, code=exc.code
    )


def _is_tls_error(exc: BaseException) -> bool:
    try:
        from engine.tls import TLSError
    except ImportError:  # pragma: no cover - engine.tls always ships
        return False
    return isinstance(exc, TLSError)
