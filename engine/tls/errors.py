"""The TLS error subtree, hung under :class:`engine.errors.PeerbaseError`::

PeerbaseError
 └── TLSError                              engine.tls
      ├── IdentityNotFoundError            (also LookupError)
      ├── IdentityExistsError
      ├── InvalidIdentityError             (also ValueError)
      ├── IdentityExpiredError
      ├── InvalidPKCS12Error               (also ValueError)
      ├── WrongPasswordError               (also ValueError)
      ├── InvalidCertificateError          (also ValueError)
      ├── CertificateVerificationError     (also ssl.SSLCertVerificationError)
      └── SecretStoreError
           ├── KeyringUnavailableError
           ├── WrongPassphraseError
           └── CorruptSecretError
"""

from __future__ import annotations

import ssl

from engine.errors import PeerbaseError

__all__ = [
    "CertificateVerificationError",
    "CorruptSecretError",
    "IdentityExistsError",
    "IdentityExpiredError",
    "IdentityNotFoundError",
    "InvalidCertificateError",
    "InvalidIdentityError",
    "InvalidPKCS12Error",
    "KeyringUnavailableError",
    "SecretStoreError",
    "TLSError",
    "WrongPassphraseError",
    "WrongPasswordError",
]

# OpenSSL's X509_V_ERR_APPLICATION_VERIFICATION: "rejected by the application".
_X509_V_ERR_APPLICATION_VERIFICATION = 50


class TLSError(PeerbaseError):
    """Something went wrong with a TLS identity, certificate or context."""

    hint = "check the TLS identity and the peer's certificate"


class IdentityNotFoundError(TLSError, LookupError):
    """No identity is stored under that label."""

    hint = "check the label with TLSIdentity.list(), or create or import the identity"


class IdentityExistsError(TLSError):
    """An identity is already stored under that label."""

    hint = "choose another label, delete the old identity first, or pass replace=True"


class InvalidIdentityError(TLSError, ValueError):
    """Bad arguments for a new identity (label, attributes, expiration) or a damaged one."""

    hint = "fix the label, attributes or expiration and try again"


class IdentityExpiredError(TLSError):
    """The identity's certificate has expired, so it cannot serve TLS."""

    hint = "create or import a new identity (the anonymous one is renewed automatically)"


class InvalidPKCS12Error(TLSError, ValueError):
    """The data is not a usable PKCS#12 (.p12/.pfx) file."""

    hint = "export the identity again as PKCS#12 with its private key and certificate"


class WrongPasswordError(TLSError, ValueError):
    """The PKCS#12 password is wrong (or the file was altered after it was written)."""

    hint = "enter the password the PKCS#12 file was exported with"


class InvalidCertificateError(TLSError, ValueError):
    """The data is not an X.509 certificate in PEM or DER form."""

    hint = "use a certificate file in PEM (-----BEGIN CERTIFICATE-----) or DER form"


class CertificateVerificationError(TLSError, ssl.SSLCertVerificationError):
    """The peer's certificate was rejected.

    Also an :class:`ssl.SSLCertVerificationError`, so asyncio and ``ssl`` callers treat
    it as the failed handshake it is.
    """

    hint = "check the pinned certificate or trusted roots against the peer's certificate"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.verify_code = _X509_V_ERR_APPLICATION_VERIFICATION
        self.verify_message = message

    def __str__(self) -> str:
        return f"{self.args[0]} ({self.hint})" if self.hint else str(self.args[0])


class SecretStoreError(TLSError):
    """The secret store (OS keyring or encrypted file) failed."""

    hint = "check that the OS keyring or the encrypted secrets file is reachable"


class KeyringUnavailableError(SecretStoreError):
    """No usable OS keyring (Secret Service, Keychain, Credential Locker) was found."""

    hint = (
        "install and start a Secret Service provider (Debian/Ubuntu: apt-get install "
        "gnome-keyring, then log in to a desktop session or run gnome-keyring-daemon "
        "--start --components=secrets inside a D-Bus session), or opt into the "
        "passphrase-encrypted file store: "
        "engine.tls.set_default_store(EncryptedFileSecretStore(path, passphrase))"
    )


class WrongPassphraseError(SecretStoreError):
    """The passphrase does not open the encrypted secrets file."""

    hint = "enter the passphrase the secrets file was created with"


class CorruptSecretError(SecretStoreError):
    """A stored secret is damaged: a missing chunk, a bad checksum or a mangled file."""

    hint = "delete the identity and create or import it again"
