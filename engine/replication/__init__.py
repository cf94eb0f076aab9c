"""Couchbase Mobile replication protocol 3 (rev trees): active Replicator, passive sessions."""

from engine.replication.checkpoint import SequenceTracker, checkpoint_id
from engine.replication.config import (
    BasicAuthenticator,
    ClientCertificateAuthenticator,
    CollectionConfiguration,
    ReplicatorConfiguration,
    ReplicatorType,
    URLEndpoint,
)
from engine.replication.conflicts import Conflict, ConflictResolver, default_resolver
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
from engine.replication.replicator import Replicator
from engine.replication.session import (
    SERVER_HEADER,
    Mode,
    ReplicationSession,
    SessionEvents,
    SessionOptions,
    peer_accepts_branches,
    peer_takes_rev_batches,
    server_header,
)
from engine.replication.status import (
    ActivityLevel,
    DocumentFlags,
    DocumentReplication,
    Progress,
    ReplicatedDocument,
    ReplicationStatistics,
    ReplicatorStatus,
)

__all__ = [
    "SERVER_HEADER",
    "ActivityLevel",
    "AuthenticationError",
    "BasicAuthenticator",
    "CertificateError",
    "ClientCertificateAuthenticator",
    "ClosedByPeerError",
    "CollectionConfiguration",
    "Conflict",
    "ConflictResolver",
    "DocumentFlags",
    "DocumentReplication",
    "ForbiddenError",
    "Mode",
    "PermanentError",
    "Progress",
    "ProtocolError",
    "RemoteNotFoundError",
    "ReplicatedDocument",
    "ReplicationError",
    "ReplicationSession",
    "ReplicationStatistics",
    "Replicator",
    "ReplicatorConfiguration",
    "ReplicatorStatus",
    "ReplicatorType",
    "SequenceTracker",
    "SessionEvents",
    "SessionOptions",
    "TransientError",
    "URLEndpoint",
    "checkpoint_id",
    "default_resolver",
    "peer_accepts_branches",
    "peer_takes_rev_batches",
    "server_header",
]
