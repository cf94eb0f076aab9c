"""TLS identities kept in the OS keyring, and the SSL contexts the listener and replicator use.

Modelled on Couchbase Lite's ``TLSIdentity``: see :mod:`engine.tls.identity` for the
store layout and :mod:`engine.tls.secret_store` for keyring chunking and the encrypted
file fallback.
"""

from __future__ import annotations

from engine.tls.certificates import (
    SUBJECT_ATTRIBUTES,
    KeyUsage,
    fingerprint,
    load_certificate,
    short_fingerprint,
)
from engine.tls.contexts import MINIMUM_TLS_VERSION, client_ssl_context
from engine.tls.errors import (
    CertificateVerificationError,
    CorruptSecretError,
    IdentityExistsError,
    IdentityExpiredError,
    IdentityNotFoundError,
    InvalidCertificateError,
    InvalidIdentityError,
    InvalidPKCS12Error,
    KeyringUnavailableError,
    SecretStoreError,
    TLSError,
    WrongPassphraseError,
    WrongPasswordError,
)
from engine.tls.identity import ANONYMOUS_LABEL, EXPIRY_WARNING_DAYS, TLSIdentity
from engine.tls.secret_store import (
    EncryptedFileSecretStore,
    KeyringSecretStore,
    SecretStore,
    get_default_store,
    set_default_store,
)
from engine.tls.verify import peer_certificate_chain, verify_server_chain

__all__ = [
    "ANONYMOUS_LABEL",
    "EXPIRY_WARNING_DAYS",
    "MINIMUM_TLS_VERSION",
    "SUBJECT_ATTRIBUTES",
    "CertificateVerificationError",
    "CorruptSecretError",
    "EncryptedFileSecretStore",
    "IdentityExistsError",
    "IdentityExpiredError",
    "IdentityNotFoundError",
    "InvalidCertificateError",
    "InvalidIdentityError",
    "InvalidPKCS12Error",
    "KeyUsage",
    "KeyringSecretStore",
    "KeyringUnavailableError",
    "SecretStore",
    "SecretStoreError",
    "TLSError",
    "TLSIdentity",
    "WrongPassphraseError",
    "WrongPasswordError",
    "client_ssl_context",
    "fingerprint",
    "get_default_store",
    "load_certificate",
    "peer_certificate_chain",
    "set_default_store",
    "short_fingerprint",
    "verify_server_chain",
]
