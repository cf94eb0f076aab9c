"""PKCS#12 import: passwords, damaged files, missing keys."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12

from engine.tls import (
    InvalidPKCS12Error,
    KeyringSecretStore,
    TLSIdentity,
    WrongPasswordError,
)
from tests.tls.pki import Issued, make_ca, make_leaf, make_pkcs12


@pytest.fixture(scope="module")
def pki() -> tuple[Issued, Issued]:
    root = make_ca("Root")
    return root, make_leaf("peer", root)


@pytest.mark.parametrize("password", ["pässword", b"p\xc3\xa4ssword"])
def test_password_as_str_or_bytes(
    memory_store: KeyringSecretStore, pki: tuple[Issued, Issued], password: str | bytes
) -> None:
    root, leaf = pki
    data = make_pkcs12(leaf, [root.cert], "pässword".encode())

    identity = TLSIdentity.import_pkcs12(data, password, "peer", store=memory_store)

    assert identity.chain == [leaf.cert, root.cert]
    assert identity.subject == {"common_name": "peer"}


def test_unencrypted_pkcs12(memory_store: KeyringSecretStore, pki: tuple[Issued, Issued]) -> None:
    _, leaf = pki

    identity = TLSIdentity.import_pkcs12(
        make_pkcs12(leaf, [], None), None, "peer", store=memory_store
    )

    assert identity.chain == [leaf.cert]


@pytest.mark.parametrize("password", ["wrong", "", None])
def test_wrong_or_missing_password(
    memory_store: KeyringSecretStore, pki: tuple[Issued, Issued], password: str | None
) -> None:
    root, leaf = pki
    data = make_pkcs12(leaf, [root.cert], b"right")

    with pytest.raises(WrongPasswordError, match="password is wrong") as caught:
        TLSIdentity.import_pkcs12(data, password, "peer", store=memory_store)

    assert not isinstance(caught.value, InvalidPKCS12Error)
    assert TLSIdentity.list(store=memory_store) == []


def test_corrupt_data(memory_store: KeyringSecretStore, pki: tuple[Issued, Issued]) -> None:
    root, leaf = pki
    good = make_pkcs12(leaf, [root.cert], b"pw")

    for data in (b"", b"definitely not PKCS#12", good[: len(good) // 2], b"\x30\x03\x02\x01\x03"):
        with pytest.raises(InvalidPKCS12Error, match="not a PKCS#12 file"):
            TLSIdentity.import_pkcs12(data, "pw", "peer", store=memory_store)
    assert TLSIdentity.list(store=memory_store) == []


def test_pkcs12_without_a_private_key(
    memory_store: KeyringSecretStore, pki: tuple[Issued, Issued]
) -> None:
    root, leaf = pki
    data = make_pkcs12(leaf, [root.cert], b"pw", with_key=False)

    with pytest.raises(InvalidPKCS12Error, match="no private key"):
        TLSIdentity.import_pkcs12(data, "pw", "peer", store=memory_store)


def test_leaf_is_found_among_the_bundled_certificates(
    memory_store: KeyringSecretStore, pki: tuple[Issued, Issued]
) -> None:
    root, leaf = pki
    data = pkcs12.serialize_key_and_certificates(
        None, leaf.key, None, [root.cert, leaf.cert], serialization.NoEncryption()
    )

    identity = TLSIdentity.import_pkcs12(data, None, "peer", store=memory_store)

    assert identity.chain == [leaf.cert, root.cert]


def test_pkcs12_whose_certificates_do_not_match_the_key(
    memory_store: KeyringSecretStore, pki: tuple[Issued, Issued]
) -> None:
    root, leaf = pki
    data = pkcs12.serialize_key_and_certificates(
        None,
        ec.generate_private_key(ec.SECP256R1()),
        None,
        [leaf.cert, root.cert],
        serialization.NoEncryption(),
    )

    with pytest.raises(InvalidPKCS12Error, match="no certificate for its private key"):
        TLSIdentity.import_pkcs12(data, None, "peer", store=memory_store)
