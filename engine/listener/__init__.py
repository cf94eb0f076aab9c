"""The passive peer: a URL endpoint listener Couchbase Lite replicators connect to.

Modelled on Couchbase Lite's ``URLEndpointListener``: TLS on by default (anonymous
self-signed identity from the keyring), HTTP Basic or client-certificate authentication,
read-only mode, and an event stream of connections for the GUI.
"""

from __future__ import annotations

from engine.listener.auth import (
    FailureThrottle,
    ListenerCertificateAuthenticator,
    ListenerPasswordAuthenticator,
    check_password,
    fixed_credentials,
    parse_basic_authorization,
)
from engine.listener.config import ListenerAuthenticator, URLEndpointListenerConfiguration
from engine.listener.errors import (
    InterfaceNotFoundError,
    ListenerConfigError,
    ListenerError,
    ListenerStateError,
    PortInUseError,
)
from engine.listener.events import (
    CertificateInfo,
    ConnectionClosed,
    ConnectionOpened,
    ConnectionRefused,
    EventToken,
    IdentityExpiring,
    ListenerEvent,
    ReplicationDirection,
)
from engine.listener.interfaces import InterfaceAddress, interface_addresses, resolve_interface
from engine.listener.listener import ConnectionInfo, ListenerStatus, URLEndpointListener

__all__ = [
    "CertificateInfo",
    "ConnectionClosed",
    "ConnectionInfo",
    "ConnectionOpened",
    "ConnectionRefused",
    "EventToken",
    "FailureThrottle",
    "IdentityExpiring",
    "InterfaceAddress",
    "InterfaceNotFoundError",
    "ListenerAuthenticator",
    "ListenerCertificateAuthenticator",
    "ListenerConfigError",
    "ListenerError",
    "ListenerEvent",
    "ListenerPasswordAuthenticator",
    "ListenerStateError",
    "ListenerStatus",
    "PortInUseError",
    "ReplicationDirection",
    "URLEndpointListener",
    "URLEndpointListenerConfiguration",
    "check_password",
    "fixed_credentials",
    "interface_addresses",
    "parse_basic_authorization",
    "resolve_interface",
]
