"""Throwaway PKI for the TLS tests: CAs, leaves and PKCS#12 files built with cryptography.

Written independently of engine.tls.certificates on purpose: the tests' certificates
must not share the code under test.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = dt.datetime.now(dt.UTC)


@dataclass
class Issued:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


def _issue(
    cn: str,
    issuer: Issued | None,
    extensions: list[tuple[x509.ExtensionType, bool]],
    *,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> Issued:
    """A new key and its certificate, signed by ``issuer`` (None: self-signed)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.cert.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - dt.timedelta(days=1))
        .not_valid_after(not_after or NOW + dt.timedelta(days=20))
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return Issued(key, builder.sign(issuer.key if issuer else key, hashes.SHA256()))


def make_ca(cn: str, issuer: Issued | None = None) -> Issued:
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    return _issue(
        cn,
        issuer,
        [(x509.BasicConstraints(ca=True, path_length=None), True), (usage, True)],
        not_after=NOW + dt.timedelta(days=30),
    )


def make_leaf(cn: str, issuer: Issued) -> Issued:
    usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    return _issue(
        cn,
        issuer,
        [
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (x509.ExtendedKeyUsage(usages), False),
            (x509.SubjectAlternativeName(names), False),
        ],
    )


def make_self_signed(cn: str, *, not_before: dt.datetime, not_after: dt.datetime) -> Issued:
    """A bare self-signed leaf with chosen validity (e.g. already expired)."""
    return _issue(cn, None, [], not_before=not_before, not_after=not_after)


def make_pkcs12(
    leaf: Issued, cas: list[x509.Certificate], password: bytes | None, *, with_key: bool = True
) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return pkcs12.serialize_key_and_certificates(
        b"peer", leaf.key if with_key else None, leaf.cert, cas or None, encryption
    )


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)
