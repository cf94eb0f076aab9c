"""Where identities' secrets live: the OS keyring by default, or an encrypted file.

:class:`KeyringSecretStore` keeps each secret under one ``keyring`` service. A value is
base64 text split into chunks of at most :data:`KEYRING_CHUNK_CHARS` characters: the
Windows Credential Locker caps a secret at 2,560 bytes and ``keyring`` writes it as
UTF-16 (2 bytes a character); 1,000 characters plus the head's at most 80 stay under
1,280. Chunking is done for every backend so that it is exercised everywhere. Layout for
a secret ``name`` (names ending in ``#<digits>`` are reserved for chunks)::

    username "name"      "pb1:<chunks>:<sha256 of the value, hex>:" + chunk 0
    username "name#1"    chunk 1
    ...

Extra chunks are written before the head and deleted after it, and the checksum
catches a head that does not match its chunks (:class:`CorruptSecretError`).

:class:`EncryptedFileSecretStore` is the explicit opt-in fallback for machines without
a keyring. It is a store of its own rather than a ``keyring`` backend: ``keyring``
registers every backend subclass for automatic selection by priority (a file backend
could be picked silently), its API has no place for a passphrase, and a file needs no
chunking.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import re
import secrets
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keyring
import keyring.errors
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from keyring.backend import KeyringBackend
from keyring.backends import chainer, fail, null

from engine.tls.errors import (
    CorruptSecretError,
    KeyringUnavailableError,
    SecretStoreError,
    WrongPassphraseError,
)

__all__ = [
    "DEFAULT_KEYRING_SERVICE",
    "KEYRING_CHUNK_CHARS",
    "EncryptedFileSecretStore",
    "KeyringSecretStore",
    "SecretStore",
    "get_default_store",
    "set_default_store",
]

DEFAULT_KEYRING_SERVICE = "peerbase-tls"
KEYRING_CHUNK_CHARS = 1000
_HEAD_PREFIX = "pb1"
_CHUNK_SUFFIX = re.compile(r"#\d+$")


class SecretStore(ABC):
    """A small map of names to secret bytes."""

    @abstractmethod
    def get(self, name: str) -> bytes | None:
        """The value stored under ``name``, or None."""

    @abstractmethod
    def set(self, name: str, value: bytes) -> None:
        """Store ``value`` under ``name``, replacing any old value."""

    @abstractmethod
    def delete(self, name: str) -> bool:
        """Remove ``name``; True if it existed."""


class KeyringSecretStore(SecretStore):
    """Secrets in the OS keyring through ``keyring``, chunked (see the module docstring).

    ``backend`` defaults to whatever ``keyring.get_keyring()`` returns at each call.
    """

    def __init__(
        self, service: str = DEFAULT_KEYRING_SERVICE, *, backend: KeyringBackend | None = None
    ) -> None:
        if not service:
            raise ValueError("the keyring service name must not be empty")
        self.service = service
        self._backend = backend

    def __repr__(self) -> str:
        return f"KeyringSecretStore(service={self.service!r})"

    def get(self, name: str) -> bytes | None:
        _check_name(name)
        with self._keyring() as ring:
            head = ring.get_password(self.service, name)
            if head is None:
                return None
            count, digest, first = _parse_head(name, head)
            parts = [first]
            for index in range(1, count):
                part = ring.get_password(self.service, _chunk_name(name, index))
                if part is None:
                    raise CorruptSecretError(
                        f"secret {name!r} in keyring service {self.service!r} is missing "
                        f"chunk {index} of {count}"
                    )
                parts.append(part)
        try:
            value = base64.b64decode("".join(parts).encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise CorruptSecretError(f"secret {name!r} is not valid base64") from exc
        if hashlib.sha256(value).hexdigest() != digest:
            raise CorruptSecretError(
                f"secret {name!r} in keyring service {self.service!r} does not match its "
                "checksum (its chunks were changed or mixed up)"
            )
        return value

    def set(self, name: str, value: bytes) -> None:
        _check_name(name)
        text = base64.b64encode(value).decode("ascii")
        chunks = [
            text[i : i + KEYRING_CHUNK_CHARS] for i in range(0, len(text), KEYRING_CHUNK_CHARS)
        ]
        chunks = chunks or [""]
        head = f"{_HEAD_PREFIX}:{len(chunks)}:{hashlib.sha256(value).hexdigest()}:"
        with self._keyring() as ring:
            old_count = self._chunk_count(ring, name)
            for index in range(1, len(chunks)):
                ring.set_password(self.service, _chunk_name(name, index), chunks[index])
            ring.set_password(self.service, name, head + chunks[0])
            for index in range(len(chunks), old_count):
                _delete_quietly(ring, self.service, _chunk_name(name, index))

    def delete(self, name: str) -> bool:
        _check_name(name)
        with self._keyring() as ring:
            count = self._chunk_count(ring, name)
            if count == 0:
                return False
            _delete_quietly(ring, self.service, name)
            for index in range(1, count):
                _delete_quietly(ring, self.service, _chunk_name(name, index))
        return True

    def _chunk_count(self, ring: KeyringBackend, name: str) -> int:
        head = ring.get_password(self.service, name)
        if head is None:
            return 0
        try:
            return _parse_head(name, head)[0]
        except CorruptSecretError:
            return 1

    @contextlib.contextmanager
    def _keyring(self) -> Iterator[KeyringBackend]:
        ring = self._backend if self._backend is not None else keyring.get_keyring()
        if _is_unusable(ring):
            raise KeyringUnavailableError(
                f"no OS keyring is available (keyring selected {ring.name!r})"
            )
        try:
            yield ring
        except keyring.errors.NoKeyringError as exc:
            raise KeyringUnavailableError(f"no OS keyring is available: {exc}") from exc
        except keyring.errors.KeyringLocked as exc:
            raise KeyringUnavailableError(
                f"the OS keyring is locked: {exc}",
                hint="unlock the keyring (log in to the desktop session) and try again",
            ) from exc
        except keyring.errors.InitError as exc:
            raise KeyringUnavailableError(f"the OS keyring cannot be reached: {exc}") from exc
        except keyring.errors.KeyringError as exc:
            raise SecretStoreError(f"the OS keyring ({ring.name}) failed: {exc}") from exc
        except OSError as exc:  # e.g. Secret Service: the D-Bus socket is gone
            raise KeyringUnavailableError(f"the OS keyring cannot be reached: {exc!r}") from exc


def _is_unusable(ring: KeyringBackend) -> bool:
    if isinstance(ring, fail.Keyring | null.Keyring):
        return True
    return isinstance(ring, chainer.ChainerBackend) and not ring.backends


def _check_name(name: str) -> None:
    if not name or _CHUNK_SUFFIX.search(name):
        raise ValueError(f"invalid secret name {name!r} (empty, or ends like a chunk name)")


def _chunk_name(name: str, index: int) -> str:
    return f"{name}#{index}"


def _parse_head(name: str, head: str) -> tuple[int, str, str]:
    prefix, _, rest = head.partition(":")
    count_text, _, rest = rest.partition(":")
    digest, sep, first = rest.partition(":")
    if prefix != _HEAD_PREFIX or not sep or not count_text.isdigit() or len(digest) != 64:
        raise CorruptSecretError(f"secret {name!r} is not in Peerbase's keyring format")
    count = int(count_text)
    if count < 1:
        raise CorruptSecretError(f"secret {name!r} claims {count} chunks")
    return count, digest, first


def _delete_quietly(ring: KeyringBackend, service: str, username: str) -> None:
    with contextlib.suppress(keyring.errors.PasswordDeleteError):
        ring.delete_password(service, username)


class EncryptedFileSecretStore(SecretStore):
    """Secrets in one file, encrypted with AES-256-GCM under a scrypt-derived key.

    The file is JSON: the scrypt parameters and salt, a fresh 96-bit nonce per write, and
    the ciphertext of a JSON map of names to base64 values; the header is the GCM
    associated data, so changed parameters fail like a wrong passphrase. Writes go to a
    0600 temporary file in the same directory, then replace the old file. One process
    at a time should write.
    """

    FORMAT = "peerbase-secrets"
    VERSION = 1

    def __init__(
        self, path: str | os.PathLike[str], passphrase: str | bytes, *, scrypt_n: int = 2**15
    ) -> None:
        if not passphrase:
            raise ValueError("the passphrase must not be empty")
        self.path = Path(path)
        self._passphrase = passphrase.encode() if isinstance(passphrase, str) else passphrase
        self._scrypt_n = scrypt_n
        self._lock = threading.Lock()
        self._key_cache: tuple[bytes, bytes] | None = None  # (header, key)
        self._read()  # a wrong passphrase fails here, not at first use

    def __repr__(self) -> str:
        return f"EncryptedFileSecretStore({str(self.path)!r})"

    def get(self, name: str) -> bytes | None:
        with self._lock:
            return self._read().get(name)

    def set(self, name: str, value: bytes) -> None:
        with self._lock:
            entries = self._read()
            entries[name] = value
            self._write(entries)

    def delete(self, name: str) -> bool:
        with self._lock:
            entries = self._read()
            if entries.pop(name, None) is None:
                return False
            self._write(entries)
            return True

    def _read(self) -> dict[str, bytes]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise SecretStoreError(f"cannot read secrets file {self.path}: {exc}") from exc
        try:
            document = json.loads(raw)
            header = _canonical(document["header"])
            params = document["header"]
            if params["format"] != self.FORMAT or params["version"] != self.VERSION:
                raise ValueError("unknown format or version")
            nonce = base64.b64decode(document["nonce"], validate=True)
            ciphertext = base64.b64decode(document["ciphertext"], validate=True)
            key = self._key_for(header, params["kdf"])
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptSecretError(f"{self.path} is not a Peerbase secrets file: {exc}") from exc
        try:
            plaintext = AESGCM(key).decrypt(nonce, ciphertext, header)
        except InvalidTag:
            self._key_cache = None
            raise WrongPassphraseError(
                f"the passphrase does not open {self.path} (or the file was altered)"
            ) from None
        try:
            entries = json.loads(plaintext)
            return {str(k): base64.b64decode(v, validate=True) for k, v in entries.items()}
        except (ValueError, AttributeError) as exc:
            raise CorruptSecretError(f"{self.path} holds malformed entries") from exc

    def _write(self, entries: dict[str, bytes]) -> None:
        if self._key_cache is None:
            kdf = {
                "name": "scrypt",
                "n": self._scrypt_n,
                "r": 8,
                "p": 1,
                "salt": base64.b64encode(secrets.token_bytes(16)).decode(),
            }
            header_obj = {"format": self.FORMAT, "version": self.VERSION, "kdf": kdf}
            self._key_for(_canonical(header_obj), kdf)
        assert self._key_cache is not None
        header, key = self._key_cache
        plaintext = json.dumps(
            {k: base64.b64encode(v).decode() for k, v in entries.items()}
        ).encode()
        nonce = secrets.token_bytes(12)
        document = {
            "header": json.loads(header),
            "nonce": base64.b64encode(nonce).decode(),
            "ciphertext": base64.b64encode(AESGCM(key).encrypt(nonce, plaintext, header)).decode(),
        }
        self._replace_file(json.dumps(document, indent=1).encode())

    def _replace_file(self, data: bytes) -> None:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".secrets-", dir=self.path.parent)  # mode 0600
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            raise SecretStoreError(f"cannot write secrets file {self.path}: {exc}") from exc

    def _key_for(self, header: bytes, kdf: dict[str, Any]) -> bytes:
        if self._key_cache is not None and self._key_cache[0] == header:
            return self._key_cache[1]
        if kdf["name"] != "scrypt":
            raise ValueError(f"unknown key derivation {kdf['name']!r}")
        salt = base64.b64decode(kdf["salt"], validate=True)
        key = Scrypt(
            salt=salt, length=32, n=int(kdf["n"]), r=int(kdf["r"]), p=int(kdf["p"])
        ).derive(self._passphrase)
        self._key_cache = (header, key)
        return key


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


_default_store: SecretStore | None = None


def get_default_store() -> SecretStore:
    """The store used when no ``store=`` is given: the OS keyring unless replaced."""
    global _default_store
    if _default_store is None:
        _default_store = KeyringSecretStore()
    return _default_store


def set_default_store(store: SecretStore | None) -> None:
    """Replace the default store (e.g. opt into :class:`EncryptedFileSecretStore`).

    None goes back to the OS keyring.
    """
    global _default_store
    _default_store = store
