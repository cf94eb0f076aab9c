"""TLSIdentity storage, run against an in-memory keyring and a real gnome-keyring."""

from __future__ import annotations

import base64
import os
import ssl
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keyring
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from keyring.backend import KeyringBackend
from keyring.backends import SecretService

from engine.tls import (
    ANONYMOUS_LABEL,
    IdentityExistsError,
    IdentityNotFoundError,
    KeyringSecretStore,
    TLSIdentity,
)
from engine.tls.certificates import chain_to_bytes
from tests.tls.pki import NOW, make_ca, make_leaf, make_pkcs12, make_self_signed


def _key_der(identity: TLSIdentity) -> bytes:
    return identity.private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def test_create_then_get_round_trips(keyring_store: KeyringSecretStore) -> None:
    created = TLSIdentity.create(
        "peer", {"common_name": "peer.local", "organization": "Peerbase"}, store=keyring_store
    )

    loaded = TLSIdentity.get("peer", store=keyring_store)

    assert loaded == created
    assert loaded.fingerprint == created.fingerprint
    assert _key_der(loaded) == _key_der(created)
    assert loaded.subject == {"common_name": "peer.local", "organization": "Peerbase"}
    assert TLSIdentity.list(store=keyring_store) == ["peer"]


def test_list_delete_and_not_found(keyring_store: KeyringSecretStore) -> None:
    for label in ("b", "a", "c"):
        TLSIdentity.create(label, {"common_name": label}, store=keyring_store)

    TLSIdentity.delete("b", store=keyring_store)

    assert TLSIdentity.list(store=keyring_store) == ["a", "c"]
    with pytest.raises(IdentityNotFoundError, match="'b'") as caught:
        TLSIdentity.get("b", store=keyring_store)
    assert isinstance(caught.value, LookupError)
    with pytest.raises(IdentityNotFoundError):
        TLSIdentity.delete("b", store=keyring_store)
    assert keyring_store.get("identity:b:key") is None
    assert keyring_store.get("identity:b:chain") is None


def test_create_refuses_an_existing_label_unless_replacing(
    keyring_store: KeyringSecretStore,
) -> None:
    first = TLSIdentity.create("peer", {"common_name": "one"}, store=keyring_store)

    with pytest.raises(IdentityExistsError):
        TLSIdentity.create("peer", {"common_name": "two"}, store=keyring_store)
    assert TLSIdentity.get("peer", store=keyring_store) == first

    second = TLSIdentity.create("peer", {"common_name": "two"}, store=keyring_store, replace=True)
    assert TLSIdentity.get("peer", store=keyring_store) == second
    assert second.fingerprint != first.fingerprint
    assert TLSIdentity.list(store=keyring_store) == ["peer"]


def test_anonymous_identity_is_created_once_and_reused_after_a_restart(
    keyring_store: KeyringSecretStore, keyring_backend: KeyringBackend
) -> None:
    first = TLSIdentity.get_or_create_anonymous(store=keyring_store)
    # A new process: a fresh store object and keyring backend on the same keyring.
    if isinstance(keyring_backend, SecretService.Keyring):
        keyring.set_keyring(SecretService.Keyring())
    again = TLSIdentity.get_or_create_anonymous(store=KeyringSecretStore(keyring_store.service))

    assert first.label == ANONYMOUS_LABEL
    assert first.subject["common_name"] == ANONYMOUS_LABEL
    assert again == first
    assert _key_der(again) == _key_der(first)
    assert 364 <= (first.expiration - NOW).days <= 366


def test_expired_anonymous_identity_is_renewed(keyring_store: KeyringSecretStore) -> None:
    old = make_self_signed(
        "old", not_before=NOW.replace(year=NOW.year - 2), not_after=NOW.replace(year=NOW.year - 1)
    )
    expired = TLSIdentity.import_pkcs12(
        make_pkcs12(old, [], None), None, ANONYMOUS_LABEL, store=keyring_store
    )

    renewed = TLSIdentity.get_or_create_anonymous(store=keyring_store)

    assert expired.is_expired
    assert not renewed.is_expired
    assert renewed.fingerprint != expired.fingerprint
    assert TLSIdentity.get(ANONYMOUS_LABEL, store=keyring_store) == renewed


def test_imported_pkcs12_round_trips_with_its_chain(keyring_store: KeyringSecretStore) -> None:
    root = make_ca("Root")
    intermediate = make_ca("Intermediate", root)
    leaf = make_leaf("peer", intermediate)
    # Shuffled on purpose: the identity orders the chain leaf first.
    data = make_pkcs12(leaf, [root.cert, intermediate.cert], b"pw")

    TLSIdentity.import_pkcs12(data, "pw", "imported", store=keyring_store)
    loaded = TLSIdentity.get("imported", store=keyring_store)

    assert loaded.chain == [leaf.cert, intermediate.cert, root.cert]
    assert loaded.certificate == leaf.cert
    assert _key_der(loaded) == leaf.key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def test_chain_larger_than_a_windows_secret_is_chunked(
    keyring_store: KeyringSecretStore,
) -> None:
    cas = [make_ca("Root CA with a long name " + "x" * 30)]
    for level in range(5):
        cas.append(make_ca(f"Intermediate {level} " + "y" * 40, cas[-1]))
    leaf = make_leaf("peer", cas[-1])
    expected = [leaf.cert, *reversed([ca.cert for ca in cas])]
    assert len(chain_to_bytes(expected)) > 2560

    TLSIdentity.import_pkcs12(
        make_pkcs12(leaf, [ca.cert for ca in cas], None), None, "big", store=keyring_store
    )
    loaded = TLSIdentity.get("big", store=keyring_store)

    assert loaded.chain == expected
    backend = keyring.get_keyring()
    service = keyring_store.service
    head = backend.get_password(service, "identity:big:chain")
    assert head is not None and head.startswith("pb1:")
    chunks = [backend.get_password(service, f"identity:big:chain#{i}") for i in range(1, 4)]
    assert all(chunk is not None and len(chunk.encode("utf-16-le")) <= 2560 for chunk in chunks)
    assert len(head.encode("utf-16-le")) <= 2560


def _clear_key_markers(identity: TLSIdentity) -> list[bytes]:
    key = identity.private_key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    der = _key_der(identity)
    return [
        b"-----BEGIN PRIVATE KEY-----",
        b"-----BEGIN EC PRIVATE KEY-----",
        b"-----BEGIN RSA PRIVATE KEY-----",
        der,
        base64.b64encode(der)[52:88],  # covers the private scalar
        key.private_numbers().private_value.to_bytes(32, "big"),
    ]


def _files_containing(roots: list[Path], markers: list[bytes]) -> list[str]:
    hits = []
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                hits += [f"{path}: {marker[:30]!r}" for marker in markers if marker in data]
    return hits


def test_no_key_material_in_clear_on_disk(
    keyring_store: KeyringSecretStore,
    keyring_backend: KeyringBackend,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    work, temp = tmp_path / "cwd", tmp_path / "tmp"
    work.mkdir()
    temp.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    loaded_files: list[tuple[bytes, int]] = []
    original: Callable[..., Any] = ssl.SSLContext.load_cert_chain

    def spy(self: ssl.SSLContext, certfile: str, *args: Any, **kwargs: Any) -> None:
        loaded_files.append((Path(certfile).read_bytes(), stat.S_IMODE(os.stat(certfile).st_mode)))
        original(self, certfile, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_cert_chain", spy)
    root = make_ca("Root")
    leaf = make_leaf("imported", root)

    created = TLSIdentity.create("created", {"common_name": "created"}, store=keyring_store)
    imported = TLSIdentity.import_pkcs12(
        make_pkcs12(leaf, [root.cert], b"pw"), b"pw", "imported", store=keyring_store
    )
    for identity in (created, imported):
        identity.server_ssl_context()
        identity.client_ssl_context(accept_only_self_signed=True)

    scanned = [work, temp]
    if isinstance(keyring_backend, SecretService.Keyring):
        scanned.append(request.getfixturevalue("secret_service").root)  # gnome-keyring's files
    markers = _clear_key_markers(created) + _clear_key_markers(imported)
    assert _files_containing(scanned, markers) == []
    assert list(temp.iterdir()) == []  # the one-time key files are gone
    assert len(loaded_files) == 4
    for content, mode in loaded_files:
        assert b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in content
        assert not any(marker in content for marker in markers)
        assert mode == 0o600
