"""Self-signed certificates, fingerprints, certificate loading, chain verification, errors."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from engine.errors import PeerbaseError
from engine.tls import (
    CertificateVerificationError,
    InvalidCertificateError,
    InvalidIdentityError,
    KeyringSecretStore,
    KeyUsage,
    TLSError,
    TLSIdentity,
    load_certificate,
    verify_server_chain,
)
from engine.tls import errors as tls_errors
from tests.tls.pki import NOW, der, make_ca, make_leaf, make_self_signed


def test_create_builds_the_requested_certificate(memory_store: KeyringSecretStore) -> None:
    expiration = (NOW + dt.timedelta(days=90)).replace(microsecond=0)
    attributes = {
        "common_name": "peer-1.example",
        "organization": "Peerbase",
        "organization_unit": "Sync",
        "email": "ops@example.org",
        "country": "DE",
        "locality": "Berlin",
        "state": "Berlin",
        "hostname": "peer-1.lan",
    }

    identity = TLSIdentity.create(
        "peer", attributes, expiration=expiration, key_usages=KeyUsage.SERVER, store=memory_store
    )
    cert = identity.certificate

    assert identity.subject == {k: v for k, v in attributes.items() if k != "hostname"}
    assert identity.expiration == expiration
    assert cert.issuer == cert.subject
    assert isinstance(identity.private_key, ec.EllipticCurvePrivateKey)
    assert identity.private_key.curve.name == "secp256r1"
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and not constraints.value.ca
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.SERVER_AUTH]
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["peer-1.lan", "peer-1.example", "localhost"]
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    assert names.get_values_for_type(x509.RFC822Name) == ["ops@example.org"]


def test_create_defaults(memory_store: KeyringSecretStore) -> None:
    identity = TLSIdentity.create("peer", {"common_name": "Peer with spaces"}, store=memory_store)
    cert = identity.certificate

    assert 364 <= (identity.expiration - NOW).days <= 366
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usages) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]  # the CN is no host name
    assert not identity.is_expiring_soon
    assert identity.expiry_warning() is None


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ({"organization": "no CN"}, "common_name"),
        ({"common_name": ""}, "common_name"),
        ({"common_name": "x", "colour": "blue"}, "unknown certificate attributes"),
        ({"common_name": "x", "country": "Germany"}, "two-letter"),
        ({"common_name": "x" * 65}, "'common_name'"),
    ],
)
def test_create_rejects_bad_attributes(
    memory_store: KeyringSecretStore, attributes: dict[str, str], message: str
) -> None:
    with pytest.raises(InvalidIdentityError, match=message):
        TLSIdentity.create("peer", attributes, store=memory_store)
    assert TLSIdentity.list(store=memory_store) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"expiration": NOW - dt.timedelta(days=1)}, "not in the future"),
        ({"expiration": dt.datetime(2099, 1, 1)}, "timezone-aware"),
        ({"key_usages": KeyUsage(0)}, "key_usages"),
    ],
)
def test_create_rejects_bad_expiration_or_usage(
    memory_store: KeyringSecretStore, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidIdentityError, match=message):
        TLSIdentity.create("peer", {"common_name": "x"}, store=memory_store, **kwargs)


@pytest.mark.parametrize("label", ["", " padded", "tab\there", "x" * 129])
def test_bad_labels_are_refused(memory_store: KeyringSecretStore, label: str) -> None:
    with pytest.raises(InvalidIdentityError, match="label"):
        TLSIdentity.create(label, {"common_name": "x"}, store=memory_store)


def test_fingerprints_and_export(memory_store: KeyringSecretStore) -> None:
    identity = TLSIdentity.create("peer", {"common_name": "peer"}, store=memory_store)
    digest = hashlib.sha256(identity.cert_der()).hexdigest()

    assert identity.fingerprint == digest
    assert re.fullmatch(r"([0-9A-F]{2}:){7}[0-9A-F]{2}", identity.short_fingerprint)
    assert identity.short_fingerprint.replace(":", "").lower() == digest[:16]
    assert load_certificate(identity.cert_pem()) == identity.certificate
    assert load_certificate(identity.cert_der()) == identity.certificate
    assert identity.cert_pem().startswith(b"-----BEGIN CERTIFICATE-----")


def test_repr_shows_no_key_material(memory_store: KeyringSecretStore) -> None:
    identity = TLSIdentity.create("peer", {"common_name": "peer"}, store=memory_store)
    key = identity.private_key
    assert isinstance(key, ec.EllipticCurvePrivateKey)

    text = repr(identity)

    assert "'peer'" in text and identity.short_fingerprint in text
    assert "PRIVATE" not in text.upper()
    assert str(key.private_numbers().private_value) not in text
    assert f"{key.private_numbers().private_value:x}" not in text


def test_expiring_identity_is_reported(memory_store: KeyringSecretStore) -> None:
    identity = TLSIdentity.create(
        "soon",
        {"common_name": "soon"},
        expiration=NOW + dt.timedelta(days=20, hours=1),
        store=memory_store,
    )

    assert identity.is_expiring_soon
    assert not identity.is_expired
    assert identity.expires_within(21)
    assert not identity.expires_within(19)
    warning = identity.expiry_warning()
    assert warning is not None and "'soon' expires on" in warning
    assert identity.expiry_warning(days=10) is None


def test_load_certificate_rejects_garbage() -> None:
    for data in (b"", b"\x30\x03\x02\x01\x01", b"-----BEGIN CERTIFICATE-----\nAAAA\n"):
        with pytest.raises(InvalidCertificateError):
            load_certificate(data)


def test_pin_matches_any_certificate_of_the_chain() -> None:
    root = make_ca("Root")
    intermediate = make_ca("Intermediate", root)
    leaf = make_leaf("peer", intermediate)
    chain = [der(leaf.cert), der(intermediate.cert), der(root.cert)]

    for pin in (
        leaf.cert,
        der(intermediate.cert),
        root.cert.public_bytes(serialization.Encoding.PEM),
    ):
        assert verify_server_chain(chain, pinned=pin) == leaf.cert

    other = make_ca("Other")
    with pytest.raises(CertificateVerificationError, match="matches the pinned certificate"):
        verify_server_chain(chain, pinned=other.cert)
    # Python 3.11 gives only the leaf: then only the leaf can match.
    with pytest.raises(CertificateVerificationError, match="1 certificate"):
        verify_server_chain(chain[:1], pinned=root.cert)


def test_self_signed_only() -> None:
    own = make_self_signed(
        "own", not_before=NOW - dt.timedelta(days=1), not_after=NOW + dt.timedelta(days=1)
    )
    root = make_ca("Some CA")
    ca_signed = make_leaf("peer", root)

    assert verify_server_chain([der(own.cert)], accept_only_self_signed=True) == own.cert
    with pytest.raises(CertificateVerificationError, match="signed by 'CN=Some CA'"):
        verify_server_chain([der(ca_signed.cert), der(root.cert)], accept_only_self_signed=True)


def test_trusted_roots() -> None:
    root = make_ca("Root")
    intermediate = make_ca("Intermediate", root)
    leaf = make_leaf("peer", intermediate)
    chain = [der(leaf.cert), der(intermediate.cert)]

    assert verify_server_chain(chain, trusted_roots=[root.cert]) == leaf.cert
    assert verify_server_chain(chain[:1], trusted_roots=[intermediate.cert]) == leaf.cert
    with pytest.raises(CertificateVerificationError, match="does not lead to a trusted root"):
        verify_server_chain(chain[:1], trusted_roots=[root.cert])  # intermediate missing
    with pytest.raises(CertificateVerificationError, match="does not lead to a trusted root"):
        verify_server_chain(chain, trusted_roots=[make_ca("Stranger").cert])


def test_validity_period_is_checked() -> None:
    expired = make_self_signed(
        "old", not_before=NOW - dt.timedelta(days=10), not_after=NOW - dt.timedelta(days=1)
    )
    future = make_self_signed(
        "new", not_before=NOW + dt.timedelta(days=1), not_after=NOW + dt.timedelta(days=10)
    )

    with pytest.raises(CertificateVerificationError, match="expired on"):
        verify_server_chain([der(expired.cert)], pinned=expired.cert)
    with pytest.raises(CertificateVerificationError, match="not valid before"):
        verify_server_chain([der(future.cert)], accept_only_self_signed=True)


def test_empty_or_garbage_chain() -> None:
    with pytest.raises(CertificateVerificationError, match="no certificate"):
        verify_server_chain([])
    with pytest.raises(CertificateVerificationError, match="cannot be parsed"):
        verify_server_chain([b"not DER"])


def test_error_tree() -> None:
    classes = [getattr(tls_errors, name) for name in tls_errors.__all__]

    for cls in classes:
        assert issubclass(cls, TLSError) and issubclass(cls, PeerbaseError), cls
        assert cls.hint, f"{cls.__name__} has no hint"
    error = CertificateVerificationError("bad pin", hint="pin again")
    assert str(error) == "bad pin (pin again)"
    assert error.verify_message == "bad pin"
