"""Replicator configuration, shaped like Couchbase Lite's `ReplicatorConfiguration`."""

from __future__ import annotations

import base64
import enum
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from engine.store import Collection, Document

if TYPE_CHECKING:
    from engine.replication.conflicts import ConflictResolver
    from engine.replication.status import DocumentFlags

__all__ = [
    "BasicAuthenticator",
    "ClientCertificateAuthenticator",
    "CollectionConfiguration",
    "ReplicationFilter",
    "ReplicatorConfiguration",
    "ReplicatorType",
    "URLEndpoint",
]

#: push_filter / pull_filter: (document, flags) -> keep it?
ReplicationFilter = Callable[[Document, "DocumentFlags"], bool | Awaitable[bool]]


class ReplicatorType(enum.Enum):
    PUSH_AND_PULL = "push-and-pull"
    PUSH = "push"
    PULL = "pull"

    @property
    def push(self) -> bool:
        return self is not ReplicatorType.PULL

    @property
    def pull(self) -> bool:
        return self is not ReplicatorType.PUSH


@dataclass(frozen=True)
class URLEndpoint:
    """A passive peer: ``ws://host:port/db`` or ``wss://host:port/db``."""

    url: str

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("ws", "wss"):
            raise ValueError(f"replication URL must start with ws:// or wss://, not {self.url!r}")
        if not parts.hostname:
            raise ValueError(f"replication URL {self.url!r} has no host")
        if not parts.path.strip("/"):
            raise ValueError(f"replication URL {self.url!r} names no database (ws://host/db)")

    @property
    def database_name(self) -> str:
        return urlsplit(self.url).path.strip("/").split("/")[0]

    @property
    def tls(self) -> bool:
        return self.url.startswith("wss:")

    @property
    def blipsync_url(self) -> str:
        """The WebSocket URL to open: ``.../db/_blipsync``."""
        parts = urlsplit(self.url)
        path = parts.path.rstrip("/")
        if not path.endswith("/_blipsync"):
            path += "/_blipsync"
        return parts._replace(path=path, query="", fragment="").geturl()


@dataclass(frozen=True)
class BasicAuthenticator:
    """HTTP Basic credentials sent with the WebSocket upgrade request."""

    username: str
    password: str = field(repr=False)

    def header(self) -> str:
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return f"Basic {token}"


@dataclass(frozen=True)
class ClientCertificateAuthenticator:
    """Authenticate with a TLS client certificate (an engine.tls.TLSIdentity)."""

    identity: Any


@dataclass
class CollectionConfiguration:
    """Per-collection options: filters, document IDs, conflict resolver."""

    push_filter: ReplicationFilter | None = None
    pull_filter: ReplicationFilter | None = None
    document_ids: Sequence[str] | None = None
    conflict_resolver: ConflictResolver | None = None


@dataclass
class ReplicatorConfiguration:
    """What to replicate with whom, and how."""

    target: URLEndpoint
    collections: Mapping[Collection, CollectionConfiguration | None] | Sequence[Collection]
    replicator_type: ReplicatorType = ReplicatorType.PUSH_AND_PULL
    continuous: bool = False
    authenticator: BasicAuthenticator | ClientCertificateAuthenticator | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    pinned_server_certificate: bytes | None = None
    accept_only_self_signed_server_certificate: bool = False
    trusted_root_certificates: Sequence[bytes] | None = None
    heartbeat: float = 300
    max_attempts: int = 0
    max_attempt_wait_time: float = 300
    enable_auto_purge: bool = True
    enable_delta_sync: bool = False

    def __post_init__(self) -> None:
        if not self.collections:
            raise ValueError("a replicator needs at least one collection")
        if not isinstance(self.collections, Mapping):
            self.collections = {c: None for c in self.collections}
        databases = {c.database for c in self.collections}
        if len(databases) != 1:
            raise ValueError("all collections of a replicator must belong to one database")
        if self.heartbeat <= 0:
            raise ValueError("heartbeat must be positive")
        if self.max_attempts < 0 or self.max_attempt_wait_time <= 0:
            raise ValueError("max_attempts must be >= 0 and max_attempt_wait_time > 0")

    @property
    def database(self) -> Any:
        return next(iter(self.collections)).database

    @property
    def collection_configs(self) -> dict[Collection, CollectionConfiguration]:
        assert isinstance(self.collections, Mapping)
        return {c: cfg or CollectionConfiguration() for c, cfg in self.collections.items()}

    @property
    def effective_max_attempts(self) -> int | None:
        """Attempts before giving up on transient errors (None: unlimited)."""
        if self.max_attempts:
            return self.max_attempts
        return None if self.continuous else 10
