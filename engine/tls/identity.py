"""TLS identities (private key + certificate chain) kept in a :class:`SecretStore`.

Modelled on Couchbase Lite's ``TLSIdentity``. Store layout (names inside the store; the
keyring store puts them under its service, default ``peerbase-tls``)::

    identity:<label>:key     private key, PKCS#8 DER
    identity:<label>:chain   certificates leaf first, each as 4-byte length + DER
    index                    JSON list of labels (keyrings cannot enumerate entries)
"""

from __future__ import annotations

import builtins
import datetime as dt
import json
import logging
import ssl
from collections.abc import Mapping, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12

from engine.tls import contexts
from engine.tls.certificates import (
    CertificateInput,
    KeyUsage,
    TLSPrivateKey,
    build_self_signed,
    certificate_der,
    chain_from_bytes,
    chain_to_bytes,
    fingerprint,
    is_tls_private_key,
    order_chain,
    short_fingerprint,
    subject_attributes,
)
from engine.tls.errors import (
    CorruptSecretError,
    IdentityExistsError,
    IdentityExpiredError,
    IdentityNotFoundError,
    InvalidIdentityError,
    InvalidPKCS12Error,
    WrongPasswordError,
)
from engine.tls.secret_store import SecretStore, get_default_store

__all__ = [
    "ANONYMOUS_LABEL",
    "DEFAULT_VALIDITY",
    "EXPIRY_WARNING_DAYS",
    "TLSIdentity",
]

log = logging.getLogger(__name__)

ANONYMOUS_LABEL = "peerbase-anonymous"
DEFAULT_VALIDITY = dt.timedelta(days=365)
#: An identity expiring within this many days is reported as expiring soon.
EXPIRY_WARNING_DAYS = 30
_INDEX = "index"
_MAX_LABEL = 128


class TLSIdentity:
    """A private key and its certificate chain (leaf first), stored under a label."""

    __slots__ = ("_chain", "_key", "_label")

    def __init__(
        self, label: str, private_key: TLSPrivateKey, chain: Sequence[x509.Certificate]
    ) -> None:
        _check_label(label)
        if not chain:
            raise InvalidIdentityError("an identity needs at least one certificate")
        if not _same_public_key(private_key, chain[0]):
            raise InvalidIdentityError("the private key does not match the leaf certificate")
        self._label = label
        self._key = private_key
        self._chain = tuple(chain)

    def __repr__(self) -> str:
        subject = self.certificate.subject.rfc4514_string()
        return (
            f"TLSIdentity(label={self._label!r}, subject={subject!r}, "
            f"fingerprint={self.short_fingerprint!r}, expiration={self.expiration.isoformat()!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TLSIdentity):
            return NotImplemented
        return self._label == other._label and self._chain == other._chain

    def __hash__(self) -> int:
        return hash((self._label, self.fingerprint))

    # -- properties ---------------------------------------------------------------------

    @property
    def label(self) -> str:
        return self._label

    @property
    def certificate(self) -> x509.Certificate:
        """The leaf certificate."""
        return self._chain[0]

    @property
    def chain(self) -> builtins.list[x509.Certificate]:
        """The certificate chain, leaf first."""
        return builtins.list(self._chain)

    @property
    def private_key(self) -> TLSPrivateKey:
        return self._key

    @property
    def expiration(self) -> dt.datetime:
        """When the leaf certificate stops being valid (UTC)."""
        return self.certificate.not_valid_after_utc

    @property
    def subject(self) -> dict[str, str]:
        """The leaf's subject as ``{"common_name": ..., "organization": ..., ...}``."""
        return subject_attributes(self.certificate)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the leaf certificate's DER, lowercase hex (64 characters)."""
        return fingerprint(self.certificate)

    @property
    def short_fingerprint(self) -> str:
        """First 8 bytes of :attr:`fingerprint`, uppercase, colon-separated (``AB:CD:...``)."""
        return short_fingerprint(self.certificate)

    @property
    def is_expired(self) -> bool:
        return self.expires_within(0)

    @property
    def is_expiring_soon(self) -> bool:
        """True if the identity expires within :data:`EXPIRY_WARNING_DAYS` days (or has)."""
        return self.expires_within(EXPIRY_WARNING_DAYS)

    def expires_within(self, days: float) -> bool:
        """True if the leaf is invalid ``days`` days from now."""
        return self.expiration <= dt.datetime.now(dt.UTC) + dt.timedelta(days=days)

    def expiry_warning(self, days: float = EXPIRY_WARNING_DAYS) -> str | None:
        """A message for the user if the identity expires within ``days``, else None."""
        now = dt.datetime.now(dt.UTC)
        if self.expiration <= now:
            return f"TLS identity {self._label!r} expired on {self.expiration:%Y-%m-%d}"
        if not self.expires_within(days):
            return None
        left = (self.expiration - now).days
        return (
            f"TLS identity {self._label!r} expires on {self.expiration:%Y-%m-%d} "
            f"(in {left} day{'s' if left != 1 else ''}); renew it before then"
        )

    def cert_pem(self, *, full_chain: bool = False) -> bytes:
        """The leaf (or the whole chain) as PEM, e.g. for a peer to pin."""
        certs = self._chain if full_chain else self._chain[:1]
        return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certs)

    def cert_der(self) -> bytes:
        """The leaf certificate as DER."""
        return certificate_der(self.certificate)

    # -- SSL contexts ---------------------------------------------------------------------

    def server_ssl_context(
        self,
        *,
        require_client_cert: bool = False,
        client_ca_certs: Sequence[CertificateInput] | None = None,
    ) -> ssl.SSLContext:
        """A TLS 1.2+ server context serving this identity.

        Raises :class:`IdentityExpiredError` if it has expired, and logs
        :meth:`expiry_warning` if it expires soon. With ``require_client_cert`` clients
        must present a certificate issued by, or equal to, one of ``client_ca_certs``.
        """
        if self.is_expired:
            raise IdentityExpiredError(
                f"TLS identity {self._label!r} expired on {self.expiration.isoformat()}"
            )
        warning = self.expiry_warning()
        if warning:
            log.warning("%s", warning)
        return contexts.server_ssl_context(
            self, require_client_cert=require_client_cert, client_ca_certs=client_ca_certs
        )

    def client_ssl_context(
        self,
        *,
        pinned_certificate: CertificateInput | None = None,
        accept_only_self_signed: bool = False,
        trusted_roots: Sequence[CertificateInput] | None = None,
    ) -> ssl.SSLContext:
        """:func:`engine.tls.client_ssl_context` presenting this identity as client cert."""
        return contexts.client_ssl_context(
            pinned_certificate=pinned_certificate,
            accept_only_self_signed=accept_only_self_signed,
            trusted_roots=trusted_roots,
            client_identity=self,
        )

    # -- storage --------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        label: str,
        attributes: Mapping[str, str],
        expiration: dt.datetime | None = None,
        key_usages: KeyUsage = KeyUsage.SERVER | KeyUsage.CLIENT,
        *,
        store: SecretStore | None = None,
        replace: bool = False,
    ) -> TLSIdentity:
        """Generate an EC P-256 key and a self-signed certificate, store and return them.

        ``attributes`` are :data:`engine.tls.SUBJECT_ATTRIBUTES` keys (``common_name``
        required) plus ``hostname``; ``expiration`` defaults to one year from now.
        """
        _check_label(label)
        store = _store(store)
        now = dt.datetime.now(dt.UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = build_self_signed(
            key,
            attributes,
            expiration=expiration or now + DEFAULT_VALIDITY,
            key_usages=key_usages,
            now=now,
        )
        identity = cls(label, key, [cert])
        identity._save(store, replace=replace)
        return identity

    @classmethod
    def import_pkcs12(
        cls,
        data: bytes,
        password: str | bytes | None,
        label: str,
        *,
        store: SecretStore | None = None,
        replace: bool = False,
    ) -> TLSIdentity:
        """Import a PKCS#12 (.p12/.pfx) holding a private key and its certificate chain."""
        _check_label(label)
        store = _store(store)
        secret = password.encode() if isinstance(password, str) else password
        try:
            bundle = pkcs12.load_pkcs12(data, secret or None)
        except ValueError as exc:
            if _looks_like_pfx(data):
                raise WrongPasswordError(
                    "the PKCS#12 password is wrong or missing (or the file was altered)"
                ) from exc
            raise InvalidPKCS12Error(f"the data is not a PKCS#12 file: {exc}") from exc
        except TypeError as exc:
            raise InvalidPKCS12Error(f"cannot read the PKCS#12 file: {exc}") from exc
        key = bundle.key
        if key is None:
            raise InvalidPKCS12Error("the PKCS#12 file holds no private key")
        if not is_tls_private_key(key):
            raise InvalidPKCS12Error(
                f"the PKCS#12 private key ({type(key).__name__}) cannot be used for TLS",
                hint="use an RSA, EC, Ed25519 or Ed448 key",
            )
        certs = [c.certificate for c in ([bundle.cert] if bundle.cert else [])]
        certs += [c.certificate for c in bundle.additional_certs]
        leaf = next((cert for cert in certs if _same_public_key(key, cert)), None)
        if leaf is None:
            raise InvalidPKCS12Error("the PKCS#12 file holds no certificate for its private key")
        identity = cls(label, key, order_chain(leaf, certs))
        identity._save(store, replace=replace)
        return identity

    @classmethod
    def get(cls, label: str, *, store: SecretStore | None = None) -> TLSIdentity:
        """The identity stored under ``label``; :class:`IdentityNotFoundError` if none."""
        _check_label(label)
        store = _store(store)
        key_bytes = store.get(_key_name(label))
        chain_bytes = store.get(_chain_name(label))
        if key_bytes is None and chain_bytes is None:
            raise IdentityNotFoundError(f"no TLS identity is stored under {label!r}")
        if key_bytes is None or chain_bytes is None:
            raise CorruptSecretError(
                f"TLS identity {label!r} is incomplete (its "
                f"{'private key' if key_bytes is None else 'certificate chain'} is missing)"
            )
        try:
            key = serialization.load_der_private_key(key_bytes, password=None)
            chain = chain_from_bytes(chain_bytes)
        except ValueError as exc:
            raise CorruptSecretError(f"TLS identity {label!r} cannot be read: {exc}") from exc
        if not is_tls_private_key(key):
            raise CorruptSecretError(f"TLS identity {label!r} has an unusable key type")
        return cls(label, key, chain)

    @classmethod
    def get_or_create_anonymous(
        cls, label: str = ANONYMOUS_LABEL, *, store: SecretStore | None = None
    ) -> TLSIdentity:
        """The anonymous self-signed identity, created on first use and renewed once expired."""
        store = _store(store)
        try:
            identity = cls.get(label, store=store)
        except IdentityNotFoundError:
            pass
        else:
            if not identity.is_expired:
                return identity
            log.info(
                "TLS identity %r expired on %s; creating a new one", label, identity.expiration
            )
        return cls.create(label, {"common_name": ANONYMOUS_LABEL}, store=store, replace=True)

    @classmethod
    def delete(cls, label: str, *, store: SecretStore | None = None) -> None:
        """Remove the identity; :class:`IdentityNotFoundError` if there is none."""
        _check_label(label)
        store = _store(store)
        found = store.delete(_key_name(label))
        found = store.delete(_chain_name(label)) or found
        labels = _read_index(store)
        if label in labels:
            labels.remove(label)
            store.set(_INDEX, json.dumps(labels).encode())
            found = True
        if not found:
            raise IdentityNotFoundError(f"no TLS identity is stored under {label!r}")

    @classmethod
    def list(cls, *, store: SecretStore | None = None) -> builtins.list[str]:
        """Labels of the stored identities, sorted."""
        return _read_index(_store(store))

    def _save(self, store: SecretStore, *, replace: bool) -> None:
        label = self._label
        exists = (
            store.get(_chain_name(label)) is not None or store.get(_key_name(label)) is not None
        )
        if exists and not replace:
            raise IdentityExistsError(f"a TLS identity is already stored under {label!r}")
        key_der = self._key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),  # the store encrypts it (keyring or AES-GCM file)
        )
        store.set(_key_name(label), key_der)
        store.set(_chain_name(label), chain_to_bytes(self._chain))
        labels = _read_index(store)
        if label not in labels:
            store.set(_INDEX, json.dumps(sorted([*labels, label])).encode())


def _store(store: SecretStore | None) -> SecretStore:
    return store if store is not None else get_default_store()


def _check_label(label: str) -> None:
    if (
        not isinstance(label, str)
        or not label
        or len(label) > _MAX_LABEL
        or not label.isprintable()
        or label != label.strip()
    ):
        raise InvalidIdentityError(
            f"invalid identity label {label!r}",
            hint=f"use 1-{_MAX_LABEL} printable characters without leading/trailing spaces",
        )


def _key_name(label: str) -> str:
    return f"identity:{label}:key"


def _chain_name(label: str) -> str:
    return f"identity:{label}:chain"


def _read_index(store: SecretStore) -> builtins.list[str]:
    raw = store.get(_INDEX)
    if raw is None:
        return []
    try:
        labels = json.loads(raw)
    except ValueError as exc:
        raise CorruptSecretError(f"the TLS identity index is not JSON: {exc}") from exc
    if not isinstance(labels, builtins.list) or not all(isinstance(x, str) for x in labels):
        raise CorruptSecretError("the TLS identity index is not a list of labels")
    return sorted(labels)


def _same_public_key(key: TLSPrivateKey, cert: x509.Certificate) -> bool:
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return key.public_key().public_bytes(*spki) == cert.public_key().public_bytes(*spki)


_PKCS7_DATA = bytes.fromhex("06092a864886f70d010701")
_PKCS7_SIGNED_DATA = bytes.fromhex("06092a864886f70d010702")


def _looks_like_pfx(data: bytes) -> bool:
    """True if ``data`` has the outer shape of a PKCS#12 PFX (RFC 7292 section 4).

    ``PFX ::= SEQUENCE { version INTEGER {v3(3)}, authSafe ContentInfo, macData ... }``.
    OpenSSL reports a wrong password and mangled data alike; a well-formed envelope
    means the password (or the MAC-protected content) is what failed.
    """
    offset = _skip_header(data, 0, 0x30, whole=True)
    if offset is None or data[offset : offset + 3] != b"\x02\x01\x03":
        return False
    offset = _skip_header(data, offset + 3, 0x30, whole=False)
    if offset is None:
        return False
    oid = data[offset : offset + len(_PKCS7_DATA)]
    return oid in (_PKCS7_DATA, _PKCS7_SIGNED_DATA)


def _skip_header(data: bytes, offset: int, tag: int, *, whole: bool) -> int | None:
    """Offset after a DER/BER tag+length of ``tag`` at ``offset``, or None."""
    if len(data) < offset + 2 or data[offset] != tag:
        return None
    first = data[offset + 1]
    offset += 2
    if first == 0x80:  # BER indefinite length, as some exporters write PKCS#12
        return offset
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count > 4 or len(data) < offset + count:
            return None
        length = int.from_bytes(data[offset : offset + count], "big")
        offset += count
    if (whole and offset + length != len(data)) or offset + length > len(data):
        return None
    return offset
