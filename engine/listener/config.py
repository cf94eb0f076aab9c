"""`URLEndpointListenerConfiguration`, shaped like Couchbase Lite's."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.listener.auth import ListenerCertificateAuthenticator, ListenerPasswordAuthenticator
from engine.listener.errors import ListenerConfigError
from engine.store import Collection, Database

if TYPE_CHECKING:
    from engine.tls import TLSIdentity

__all__ = ["ListenerAuthenticator", "URLEndpointListenerConfiguration"]

ListenerAuthenticator = ListenerPasswordAuthenticator | ListenerCertificateAuthenticator


@dataclass
class URLEndpointListenerConfiguration:
    """What a listener serves, where, and how peers are admitted.

    ``port`` 0 picks a free port; ``network_interface`` is an interface name or one of
    its IP addresses (None: all). TLS is on by default with the anonymous self-signed
    identity unless ``tls_identity`` is given. ``open_timeout`` bounds the TCP, TLS and
    HTTP handshakes of each connection.
    """

    collections: Sequence[Collection]
    port: int = 0
    network_interface: str | None = None
    disable_tls: bool = False
    tls_identity: TLSIdentity | None = None
    authenticator: ListenerAuthenticator | None = None
    read_only: bool = False
    enable_delta_sync: bool = False
    open_timeout: float = 10.0

    def __post_init__(self) -> None:
        self.collections = list(self.collections)
        if not self.collections:
            raise ListenerConfigError("a listener needs at least one collection")
        if len({id(c.database) for c in self.collections}) != 1:
            raise ListenerConfigError("all collections of a listener must belong to one database")
        names = [c.full_name for c in self.collections]
        if len(set(names)) != len(names):
            raise ListenerConfigError(f"a collection is listed twice: {names}")
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ListenerConfigError(f"port must be 0-65535, not {self.port!r}")
        if self.open_timeout <= 0:
            raise ListenerConfigError("open_timeout must be positive")
        if self.disable_tls and self.tls_identity is not None:
            raise ListenerConfigError(
                "tls_identity is set but TLS is disabled", hint="drop one of the two options"
            )
        if self.disable_tls and isinstance(self.authenticator, ListenerCertificateAuthenticator):
            raise ListenerConfigError(
                "client-certificate authentication needs TLS",
                hint="enable TLS or use a ListenerPasswordAuthenticator",
            )

    @property
    def database(self) -> Database:
        return self.collections[0].database
