"""X.509 helpers: loading, fingerprints, subject attributes and self-signed certificates."""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TypeGuard

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from engine.tls.errors import InvalidCertificateError, InvalidIdentityError

__all__ = [
    "SUBJECT_ATTRIBUTES",
    "CertificateInput",
    "KeyUsage",
    "TLSPrivateKey",
    "as_certificate",
    "build_self_signed",
    "certificate_der",
    "chain_from_bytes",
    "chain_to_bytes",
    "fingerprint",
    "is_self_signed",
    "is_tls_private_key",
    "load_certificate",
    "order_chain",
    "short_fingerprint",
    "subject_attributes",
]

#: Private key types TLS can use.
TLSPrivateKey = (
    ec.EllipticCurvePrivateKey
    | rsa.RSAPrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)

_TLS_KEY_CLASSES = (
    ec.EllipticCurvePrivateKey,
    rsa.RSAPrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
)

#: A certificate as a parsed object, or PEM/DER bytes.
CertificateInput = x509.Certificate | bytes

#: ``attributes`` keys of :meth:`TLSIdentity.create` and the subject fields they set
#: (Couchbase Lite's certificate attributes in snake_case). ``hostname`` goes into the
#: subjectAltName only.
SUBJECT_ATTRIBUTES: Mapping[str, x509.ObjectIdentifier] = {
    "common_name": NameOID.COMMON_NAME,
    "pseudonym": NameOID.PSEUDONYM,
    "given_name": NameOID.GIVEN_NAME,
    "surname": NameOID.SURNAME,
    "organization": NameOID.ORGANIZATION_NAME,
    "organization_unit": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "postal_address": NameOID.POSTAL_ADDRESS,
    "locality": NameOID.LOCALITY_NAME,
    "postal_code": NameOID.POSTAL_CODE,
    "state": NameOID.STATE_OR_PROVINCE_NAME,
    "country": NameOID.COUNTRY_NAME,
    "email": NameOID.EMAIL_ADDRESS,
}
_HOSTNAME = "hostname"
_OID_NAMES = {oid: name for name, oid in SUBJECT_ATTRIBUTES.items()}
_DNS_NAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
# Clock skew between peers: a new certificate is valid from a few minutes ago.
_BACKDATE = dt.timedelta(minutes=5)


class KeyUsage(enum.Flag):
    """What an identity's certificate may be used for (its extendedKeyUsage)."""

    SERVER = enum.auto()
    CLIENT = enum.auto()


def is_tls_private_key(key: object) -> TypeGuard[TLSPrivateKey]:
    """True if ``key`` is of a type TLS can use (RSA, EC, Ed25519, Ed448)."""
    return isinstance(key, _TLS_KEY_CLASSES)


def load_certificate(data: bytes) -> x509.Certificate:
    """Parse one certificate in PEM or DER form (e.g. a pinned certificate file)."""
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise InvalidCertificateError(f"not a PEM or DER X.509 certificate: {exc}") from exc


def as_certificate(cert: CertificateInput) -> x509.Certificate:
    """``cert`` parsed, if it is bytes."""
    return cert if isinstance(cert, x509.Certificate) else load_certificate(cert)


def certificate_der(cert: x509.Certificate) -> bytes:
    """The DER encoding of ``cert``."""
    return cert.public_bytes(serialization.Encoding.DER)


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, lowercase hex."""
    return hashlib.sha256(certificate_der(cert)).hexdigest()


def short_fingerprint(cert: x509.Certificate) -> str:
    """The first 8 bytes of the SHA-256 fingerprint as ``AB:CD:...`` (for people to compare)."""
    digest = hashlib.sha256(certificate_der(cert)).digest()[:8]
    return ":".join(f"{byte:02X}" for byte in digest)


def subject_attributes(cert: x509.Certificate) -> dict[str, str]:
    """The subject as ``{"common_name": ..., ...}``; unknown fields by dotted OID."""
    result: dict[str, str] = {}
    for attribute in cert.subject:
        key = _OID_NAMES.get(attribute.oid, attribute.oid.dotted_string)
        value = attribute.value
        result[key] = value if isinstance(value, str) else value.hex()
    return result


def is_self_signed(cert: x509.Certificate) -> bool:
    """True if ``cert`` names itself as issuer and its own key verifies its signature."""
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def order_chain(
    leaf: x509.Certificate, others: Iterable[x509.Certificate]
) -> list[x509.Certificate]:
    """``leaf`` first, then its issuers in order; certificates not in the path go last."""
    rest = [cert for cert in others if cert != leaf]
    chain = [leaf]
    while rest:
        current = chain[-1]
        if is_self_signed(current):
            break
        issuer = next((cert for cert in rest if cert.subject == current.issuer), None)
        if issuer is None:
            break
        rest.remove(issuer)
        chain.append(issuer)
    return chain + rest


def _subject(attributes: Mapping[str, str]) -> x509.Name:
    unknown = set(attributes) - set(SUBJECT_ATTRIBUTES) - {_HOSTNAME}
    if unknown:
        raise InvalidIdentityError(
            f"unknown certificate attributes {sorted(unknown)}",
            hint=f"use only {sorted([*SUBJECT_ATTRIBUTES, _HOSTNAME])}",
        )
    if not attributes.get("common_name"):
        raise InvalidIdentityError(
            "the 'common_name' attribute is required",
            hint="pass attributes={'common_name': 'my-peer', ...}",
        )
    country = attributes.get("country")
    if country is not None and not re.fullmatch(r"[A-Za-z]{2}", country):
        raise InvalidIdentityError(
            f"country {country!r} is not a two-letter ISO 3166 code", hint="e.g. 'DE' or 'US'"
        )
    names = []
    for key, oid in SUBJECT_ATTRIBUTES.items():
        value = attributes.get(key)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise InvalidIdentityError(f"attribute {key!r} must be a string")
        try:
            names.append(x509.NameAttribute(oid, value))
        except ValueError as exc:
            raise InvalidIdentityError(f"invalid attribute {key!r}: {exc}") from exc
    return x509.Name(names)


def _alt_names(attributes: Mapping[str, str]) -> list[x509.GeneralName]:
    dns: list[str] = []
    for candidate in (attributes.get(_HOSTNAME), attributes["common_name"], "localhost"):
        if candidate and _DNS_NAME.match(candidate) and candidate.lower() not in dns:
            dns.append(candidate.lower())
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns]
    names += [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    if attributes.get("email"):
        names.append(x509.RFC822Name(attributes["email"]))
    return names


def build_self_signed(
    private_key: TLSPrivateKey,
    attributes: Mapping[str, str],
    *,
    expiration: dt.datetime,
    key_usages: KeyUsage,
    now: dt.datetime | None = None,
) -> x509.Certificate:
    """A self-signed leaf certificate (CA:false) for ``private_key``."""
    now = now or dt.datetime.now(dt.UTC)
    if expiration.tzinfo is None:
        raise InvalidIdentityError(
            "expiration must be timezone-aware", hint="e.g. datetime.now(UTC) + timedelta(days=90)"
        )
    if expiration <= now:
        raise InvalidIdentityError(f"expiration {expiration.isoformat()} is not in the future")
    if not key_usages:
        raise InvalidIdentityError("key_usages must include SERVER, CLIENT or both")
    name = _subject(attributes)
    usages = []
    if KeyUsage.SERVER in key_usages:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if KeyUsage.CLIENT in key_usages:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    public_key = private_key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(expiration)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=isinstance(private_key, rsa.RSAPrivateKey),
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectAlternativeName(_alt_names(attributes)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    edwards = isinstance(private_key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey)
    algorithm = None if edwards else hashes.SHA256()
    return builder.sign(private_key, algorithm)


def chain_to_bytes(chain: Sequence[x509.Certificate]) -> bytes:
    """Certificates as length-prefixed DER (4-byte big-endian lengths)."""
    out = bytearray()
    for cert in chain:
        der = certificate_der(cert)
        out += len(der).to_bytes(4, "big") + der
    return bytes(out)


def chain_from_bytes(data: bytes) -> list[x509.Certificate]:
    """The inverse of :func:`chain_to_bytes`; ValueError if malformed."""
    chain = []
    offset = 0
    while offset < len(data):
        if offset + 4 > len(data):
            raise ValueError("truncated certificate length")
        length = int.from_bytes(data[offset : offset + 4], "big")
        offset += 4
        if offset + length > len(data):
            raise ValueError("truncated certificate")
        chain.append(x509.load_der_x509_certificate(data[offset : offset + length]))
        offset += length
    if not chain:
        raise ValueError("no certificates")
    return chain
