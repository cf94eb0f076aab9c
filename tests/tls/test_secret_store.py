"""Secret stores: keyring chunking, a missing keyring, the encrypted file fallback."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.errors
import pytest
from keyring.backends import SecretService, chainer, fail, null

from engine.errors import PeerbaseError
from engine.tls import (
    CorruptSecretError,
    EncryptedFileSecretStore,
    KeyringSecretStore,
    KeyringUnavailableError,
    SecretStoreError,
    TLSIdentity,
    WrongPassphraseError,
    get_default_store,
    set_default_store,
)
from engine.tls.secret_store import KEYRING_CHUNK_CHARS
from tests.tls.conftest import (
    MemoryKeyring,
    session_bus,
    start_bus,
    throwaway_env,
    using_keyring,
)

FAST_SCRYPT = 2**12


def test_values_round_trip_through_chunks(keyring_store: KeyringSecretStore) -> None:
    big = os.urandom(5000)  # 6,668 base64 characters: 7 chunks
    service = keyring_store.service

    keyring_store.set("big", big)
    stored_chunks = [keyring.get_password(service, f"big#{i}") for i in range(1, 8)]

    assert keyring_store.get("big") == big
    assert all(chunk is not None for chunk in stored_chunks[:6])
    assert stored_chunks[6] is None
    assert keyring_store.get("missing") is None

    keyring_store.set("big", b"small now")
    assert keyring_store.get("big") == b"small now"
    assert keyring.get_password(service, "big#1") is None  # stale chunks removed

    keyring_store.set("empty", b"")
    assert keyring_store.get("empty") == b""
    assert keyring_store.delete("big") is True
    assert keyring_store.delete("big") is False
    assert keyring_store.get("big") is None


def test_every_stored_piece_fits_a_windows_credential(memory_keyring: MemoryKeyring) -> None:
    store = KeyringSecretStore("svc")

    store.set("x", os.urandom(20_000))

    assert len(memory_keyring.entries) == -(-26_668 // KEYRING_CHUNK_CHARS)
    assert 2000 < memory_keyring.max_utf16_bytes <= 2560


def test_damaged_chunks_are_detected(memory_keyring: MemoryKeyring) -> None:
    store = KeyringSecretStore("svc")
    store.set("x", os.urandom(3000))
    entries = memory_keyring.entries

    entries[("svc", "x#1")] = entries[("svc", "x#1")][::-1]
    with pytest.raises(CorruptSecretError, match="checksum"):
        store.get("x")
    del entries[("svc", "x#2")]
    with pytest.raises(CorruptSecretError, match="missing chunk 2 of 4"):
        store.get("x")
    entries[("svc", "x")] = "a password someone else stored"
    with pytest.raises(CorruptSecretError, match="format"):
        store.get("x")


def test_chunk_names_are_reserved(memory_store: KeyringSecretStore) -> None:
    with pytest.raises(ValueError, match="chunk"):
        memory_store.set("name#3", b"x")


@pytest.fixture(
    params=[
        pytest.param(fail.Keyring, id="fail"),
        pytest.param(null.Keyring, id="null"),
        pytest.param(chainer.ChainerBackend, id="empty-chainer"),
    ]
)
def no_keyring(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    if request.param is chainer.ChainerBackend:
        monkeypatch.setattr(chainer.ChainerBackend, "backends", [])
    with using_keyring(request.param()):
        yield


@pytest.mark.usefixtures("no_keyring")
def test_no_keyring_backend_raises_keyring_unavailable() -> None:
    with pytest.raises(KeyringUnavailableError, match="no OS keyring is available") as caught:
        TLSIdentity.get_or_create_anonymous()

    assert isinstance(caught.value, PeerbaseError)
    assert "gnome-keyring" in caught.value.hint
    assert "EncryptedFileSecretStore" in caught.value.hint


def test_unreachable_secret_service_raises_keyring_unavailable(tmp_path: Path) -> None:
    with (
        session_bus(f"unix:path={tmp_path / 'no-bus-here'}"),
        using_keyring(SecretService.Keyring()),
        pytest.raises(KeyringUnavailableError, match="cannot be reached"),
    ):
        TLSIdentity.list()


def test_session_bus_without_a_secret_service_raises_keyring_unavailable(
    tmp_path: Path,
) -> None:
    """The headless-Linux case: D-Bus runs, but no keyring daemon provides secrets."""
    bus, address = start_bus(tmp_path, throwaway_env(tmp_path))
    try:
        with (
            session_bus(address),
            using_keyring(SecretService.Keyring()),
            pytest.raises(KeyringUnavailableError, match="cannot be reached"),
        ):
            TLSIdentity.create("peer", {"common_name": "peer"})
    finally:
        bus.terminate()
        bus.wait(5)


class _FailingKeyring(MemoryKeyring):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def get_password(self, service: str, username: str) -> str | None:
        raise self.error


def test_locked_keyring_and_other_keyring_failures_are_reported() -> None:
    store = KeyringSecretStore("svc", backend=_FailingKeyring(keyring.errors.KeyringLocked()))
    with pytest.raises(KeyringUnavailableError, match="locked") as caught:
        store.get("x")
    assert "unlock" in caught.value.hint

    store = KeyringSecretStore("svc", backend=_FailingKeyring(keyring.errors.KeyringError("boom")))
    with pytest.raises(SecretStoreError, match="boom"):
        store.get("x")


def test_file_store_round_trips_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "tls.json"
    store = EncryptedFileSecretStore(path, "correct horse")  # the default scrypt cost

    created = TLSIdentity.create("peer", {"common_name": "peer"}, store=store)
    store.set("raw", b"\x00\xff")
    reopened = EncryptedFileSecretStore(path, b"correct horse")

    assert TLSIdentity.get("peer", store=reopened) == created
    assert TLSIdentity.list(store=reopened) == ["peer"]
    assert reopened.get("raw") == b"\x00\xff"
    assert reopened.delete("raw") is True
    assert store.get("raw") is None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["tls.json"]


def test_file_store_wrong_passphrase_fails_clearly(tmp_path: Path) -> None:
    path = tmp_path / "tls.json"
    EncryptedFileSecretStore(path, "right", scrypt_n=FAST_SCRYPT).set("k", b"v")

    with pytest.raises(WrongPassphraseError, match="passphrase does not open") as caught:
        EncryptedFileSecretStore(path, "wrong", scrypt_n=FAST_SCRYPT)
    assert caught.value.hint


def test_file_store_keeps_nothing_in_clear_and_detects_tampering(tmp_path: Path) -> None:
    path = tmp_path / "tls.json"
    store = EncryptedFileSecretStore(path, "pass", scrypt_n=FAST_SCRYPT)
    store.set("name-in-the-map", b"very secret value")
    raw = path.read_bytes()

    assert b"very secret value" not in raw
    assert b"name-in-the-map" not in raw

    document = json.loads(raw)
    document["header"]["kdf"]["r"] = 4  # parameters are authenticated with the data
    path.write_text(json.dumps(document))
    with pytest.raises(WrongPassphraseError):
        store.get("name-in-the-map")

    path.write_text("not json at all")
    with pytest.raises(CorruptSecretError, match="not a Peerbase secrets file"):
        store.get("name-in-the-map")


def test_file_store_is_the_explicit_fallback_without_a_keyring(tmp_path: Path) -> None:
    fallback = EncryptedFileSecretStore(tmp_path / "tls.json", "pass", scrypt_n=FAST_SCRYPT)
    with using_keyring(fail.Keyring()):
        with pytest.raises(KeyringUnavailableError):
            TLSIdentity.get_or_create_anonymous()

        set_default_store(fallback)
        first = TLSIdentity.get_or_create_anonymous()
        again = TLSIdentity.get_or_create_anonymous()

        assert get_default_store() is fallback
        assert again == first
        assert TLSIdentity.list(store=fallback) == ["peerbase-anonymous"]


def test_default_store_is_the_keyring(memory_keyring: MemoryKeyring) -> None:
    identity = TLSIdentity.get_or_create_anonymous()

    assert isinstance(get_default_store(), KeyringSecretStore)
    assert ("peerbase-tls", "identity:peerbase-anonymous:key") in memory_keyring.entries
    assert TLSIdentity.get("peerbase-anonymous") == identity
