"""``ssl.SSLContext`` factories: TLS 1.2 minimum, identities loaded without clear key files."""

from __future__ import annotations

import contextlib
import os
import secrets
import ssl
import tempfile
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization

from engine.tls.certificates import CertificateInput, as_certificate, certificate_der
from engine.tls.errors import IdentityExpiredError
from engine.tls.verify import peer_certificate_chain, verify_server_chain

if TYPE_CHECKING:
    from engine.tls.identity import TLSIdentity

__all__ = ["MINIMUM_TLS_VERSION", "client_ssl_context", "server_ssl_context"]

MINIMUM_TLS_VERSION = ssl.TLSVersion.TLSv1_2


class _ClientContext(ssl.SSLContext):
    """A client context that can check the server's certificate at the end of the handshake."""

    accept_only_self_signed = False


def _check_peer(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> None:
    # OpenSSL cannot express "any self-signed certificate" (the context uses CERT_NONE);
    # pins and roots are trust anchors that OpenSSL checks in the handshake itself.
    if getattr(ssl_object.context, "accept_only_self_signed", False):
        verify_server_chain(peer_certificate_chain(ssl_object), accept_only_self_signed=True)


class _CheckingSSLObject(ssl.SSLObject):
    """Used by asyncio (``wrap_bio``): a failed check fails the handshake."""

    def do_handshake(self) -> None:
        super().do_handshake()
        _check_peer(self)


class _CheckingSSLSocket(ssl.SSLSocket):
    """Used by blocking sockets (``wrap_socket``): a failed check fails the handshake."""

    def do_handshake(self, block: bool = False) -> None:
        super().do_handshake(block)
        _check_peer(self)


_ClientContext.sslobject_class = _CheckingSSLObject
_ClientContext.sslsocket_class = _CheckingSSLSocket


def server_ssl_context(
    identity: TLSIdentity,
    *,
    require_client_cert: bool = False,
    client_ca_certs: Sequence[CertificateInput] | None = None,
) -> ssl.SSLContext:
    """A TLS 1.2+ server context for ``identity`` (see :meth:`TLSIdentity.server_ssl_context`).

    Clients' certificates are checked against ``client_ca_certs`` (CAs, or the clients'
    own self-signed certificates); ``require_client_cert`` makes one mandatory, which
    needs ``client_ca_certs`` (``ssl`` cannot accept unknown certificates).
    """
    if require_client_cert and not client_ca_certs:
        raise ValueError(
            "require_client_cert needs client_ca_certs: the CAs or self-signed "
            "certificates of the clients to accept"
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _harden(context)
    _load_identity(context, identity)
    if client_ca_certs:
        _load_trust(context, client_ca_certs)
        context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    return context


def client_ssl_context(
    pinned_certificate: CertificateInput | None = None,
    accept_only_self_signed: bool = False,
    trusted_roots: Sequence[CertificateInput] | None = None,
    client_identity: TLSIdentity | None = None,
) -> ssl.SSLContext:
    """A TLS 1.2+ client context for connecting to a peer.

    - ``pinned_certificate``: the server's chain must contain this certificate (its leaf,
      or a CA that issued it), which is the only trust anchor; no host name check.
    - ``accept_only_self_signed``: any self-signed leaf within its validity is accepted
      and a CA-signed one refused (with a pin as well: the pinned self-signed one); no
      host name check. Checked at the end of the handshake, which then fails with
      :class:`CertificateVerificationError`.
    - ``trusted_roots``: the chain must lead to one of these; no host name check.
    - none of them: the system's CAs and the usual host name check (``server_hostname``).

    ``client_identity`` is presented when the server asks for a client certificate.
    """
    if trusted_roots is not None and not trusted_roots:
        raise ValueError("trusted_roots is empty: pass None for the system's CAs")
    if trusted_roots and (accept_only_self_signed or pinned_certificate is not None):
        raise ValueError("trusted_roots excludes pinned_certificate and accept_only_self_signed")
    context = _ClientContext(ssl.PROTOCOL_TLS_CLIENT)
    _harden(context)
    context.accept_only_self_signed = accept_only_self_signed
    anchors = [pinned_certificate] if pinned_certificate is not None else list(trusted_roots or [])
    if anchors:
        # Peers are reached by LAN address or mDNS name; the pin or roots are the identity.
        context.check_hostname = False
        _load_trust(context, anchors)
    elif accept_only_self_signed:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if client_identity is not None:
        if client_identity.is_expired:
            raise IdentityExpiredError(
                f"TLS identity {client_identity.label!r} expired on "
                f"{client_identity.expiration.isoformat()}"
            )
        _load_identity(context, client_identity)
    return context


def _harden(context: ssl.SSLContext) -> None:
    context.minimum_version = MINIMUM_TLS_VERSION
    # A pinned leaf or a client's self-signed certificate is a trust anchor of its own.
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN


def _load_trust(context: ssl.SSLContext, certs: Sequence[CertificateInput]) -> None:
    context.load_verify_locations(
        cadata=b"".join(certificate_der(as_certificate(cert)) for cert in certs)
    )


def _load_identity(context: ssl.SSLContext, identity: TLSIdentity) -> None:
    # ssl (3.11) loads a key and chain only from a file. So the key is written as an
    # encrypted PKCS#8 PEM (random one-time password) with the chain to a 0600 temporary
    # file (mkstemp) that is deleted right after loading: no key in clear on disk.
    password = secrets.token_bytes(32).hex().encode()
    key_pem = identity.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password),
    )
    fd, path = tempfile.mkstemp(prefix="peerbase-tls-", suffix=".pem")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(identity.cert_pem(full_chain=True) + key_pem)
        context.load_cert_chain(path, password=password)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
