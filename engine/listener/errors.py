"""The listener's error subtree, hung under :class:`engine.errors.PeerbaseError`::

PeerbaseError
 └── ListenerError                         engine.listener
      ├── ListenerConfigError              (also ValueError) contradictory options
      ├── InterfaceNotFoundError           (also LookupError) unknown interface or address
      ├── PortInUseError                   another program listens on the port
      └── ListenerStateError               start() twice, etc.

Expired TLS identities raise :class:`engine.tls.IdentityExpiredError` at ``start()``.
"""

from __future__ import annotations

from engine.errors import PeerbaseError

__all__ = [
    "InterfaceNotFoundError",
    "ListenerConfigError",
    "ListenerError",
    "ListenerStateError",
    "PortInUseError",
]


class ListenerError(PeerbaseError):
    """The listener could not start or serve."""

    hint = "check the listener configuration"


class ListenerConfigError(ListenerError, ValueError):
    """The listener configuration is contradictory or incomplete."""

    hint = "fix the listener configuration"


class InterfaceNotFoundError(ListenerError, LookupError):
    """No network interface has that name or address."""

    hint = "use an interface name (e.g. eth0) or one of this machine's IP addresses"


class PortInUseError(ListenerError):
    """Another program (or listener) already uses the port."""

    hint = "choose another port, or port 0 to pick a free one"

    def __init__(self, port: int, message: str | None = None) -> None:
        super().__init__(message or f"port {port} is already in use")
        self.port = port


class ListenerStateError(ListenerError):
    """The operation does not fit the listener's state (e.g. started twice)."""

    hint = "stop the listener before starting it again"
