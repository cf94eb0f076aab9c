"""Checking a server's certificate chain after the handshake (pinning, self-signed only)."""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Sequence
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from engine.tls.certificates import (
    CertificateInput,
    as_certificate,
    certificate_der,
    is_self_signed,
    short_fingerprint,
)
from engine.tls.errors import CertificateVerificationError

__all__ = ["peer_certificate_chain", "verify_server_chain"]

# ssl.ENCODING_DER (3.13+, for the Certificate objects of _ssl).
_ENCODING_DER: int = getattr(ssl, "ENCODING_DER", 2)


def peer_certificate_chain(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> list[bytes]:
    """The DER certificates the peer presented, leaf first.

    Python 3.13+ gives the whole chain (``get_unverified_chain``); 3.11 and 3.12 only
    give the leaf, so checks on the chain then see the leaf alone.
    """
    get_chain = getattr(ssl_object, "get_unverified_chain", None)
    if get_chain is not None:
        chain: list[Any] | None = get_chain()
        if chain:
            return [
                item if isinstance(item, bytes) else item.public_bytes(_ENCODING_DER)
                for item in chain
            ]
    leaf = ssl_object.getpeercert(binary_form=True)
    return [leaf] if leaf else []


def verify_server_chain(
    chain_der: Sequence[bytes],
    *,
    pinned: CertificateInput | None = None,
    accept_only_self_signed: bool = False,
    trusted_roots: Sequence[CertificateInput] | None = None,
    now: dt.datetime | None = None,
) -> x509.Certificate:
    """Check the chain a server presented (leaf first) and return its leaf.

    Every certificate must be within its validity period. ``pinned`` must equal one of
    the presented certificates; ``accept_only_self_signed`` requires a self-signed leaf;
    ``trusted_roots`` requires the chain to lead (through the presented certificates) to
    one of them. Raises :class:`CertificateVerificationError` saying which check failed.
    """
    if not chain_der:
        raise CertificateVerificationError("the server presented no certificate")
    chain: list[x509.Certificate] = []
    for index, der in enumerate(chain_der):
        try:
            chain.append(x509.load_der_x509_certificate(der))
        except ValueError as exc:
            raise CertificateVerificationError(
                f"certificate {index} presented by the server cannot be parsed: {exc}",
                hint="the peer is not speaking valid TLS; check its address",
            ) from exc
    leaf = chain[0]
    _check_validity(chain, now or dt.datetime.now(dt.UTC))
    if pinned is not None:
        _check_pinned(chain_der, leaf, as_certificate(pinned))
    if accept_only_self_signed and not is_self_signed(leaf):
        raise CertificateVerificationError(
            f"the server's certificate ({_describe(leaf)}) is signed by "
            f"{leaf.issuer.rfc4514_string()!r}, but only self-signed certificates are accepted",
            hint="turn off accept_only_self_signed, or trust the issuing CA instead",
        )
    if trusted_roots is not None:
        _check_roots(chain, [as_certificate(root) for root in trusted_roots])
    return leaf


def _describe(cert: x509.Certificate) -> str:
    return f"{cert.subject.rfc4514_string() or 'no subject'}, {short_fingerprint(cert)}"


def _check_validity(chain: Sequence[x509.Certificate], now: dt.datetime) -> None:
    for cert in chain:
        which = "server's certificate" if cert is chain[0] else "certificate"
        if now < cert.not_valid_before_utc:
            raise CertificateVerificationError(
                f"the {which} ({_describe(cert)}) is not valid before "
                f"{cert.not_valid_before_utc.isoformat()}",
                hint="check the clocks of both machines",
            )
        if now > cert.not_valid_after_utc:
            raise CertificateVerificationError(
                f"the {which} ({_describe(cert)}) expired on "
                f"{cert.not_valid_after_utc.isoformat()}",
                hint="the peer must renew its TLS identity",
            )


def _check_pinned(
    chain_der: Sequence[bytes], leaf: x509.Certificate, pinned: x509.Certificate
) -> None:
    if certificate_der(pinned) in chain_der:
        return
    raise CertificateVerificationError(
        f"none of the {len(chain_der)} certificate(s) the server presented (leaf "
        f"{_describe(leaf)}) matches the pinned certificate ({_describe(pinned)})",
        hint="if the peer's identity changed on purpose, pin its new certificate",
    )


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _check_roots(chain: Sequence[x509.Certificate], roots: Sequence[x509.Certificate]) -> None:
    for index, cert in enumerate(chain):
        if cert in roots or any(_issued_by(cert, root) for root in roots):
            return
        if index + 1 == len(chain) or not _issued_by(cert, chain[index + 1]):
            break
    raise CertificateVerificationError(
        f"the server's certificate ({_describe(chain[0])}, issued by "
        f"{chain[0].issuer.rfc4514_string()!r}) does not lead to a trusted root",
        hint="add the issuing CA to trusted_roots, or pin the peer's certificate",
    )
