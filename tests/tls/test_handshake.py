"""Real TLS handshakes over 127.0.0.1 with asyncio streams and the engine.tls contexts."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import socket
import ssl
import threading
import warnings

import pytest

from engine.tls import (
    CertificateVerificationError,
    IdentityExpiredError,
    KeyringSecretStore,
    KeyUsage,
    TLSIdentity,
    client_ssl_context,
)
from tests.tls.conftest import exchange
from tests.tls.pki import NOW, make_ca, make_leaf, make_pkcs12, make_self_signed

# What a refused peer sees: an alert (SSLError), or the connection closed under it.
REFUSED = (ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)


async def test_anonymous_identity_serves_a_self_signed_only_client(
    memory_store: KeyringSecretStore,
) -> None:
    identity = TLSIdentity.get_or_create_anonymous(store=memory_store)

    result = await exchange(
        identity.server_ssl_context(), client_ssl_context(accept_only_self_signed=True)
    )

    assert result.reply == b"PING"
    assert result.version in ("TLSv1.2", "TLSv1.3")
    assert result.server_cert_der == identity.cert_der()


async def test_default_client_context_refuses_a_self_signed_server(
    memory_store: KeyringSecretStore,
) -> None:
    identity = TLSIdentity.get_or_create_anonymous(store=memory_store)

    with pytest.raises(ssl.SSLCertVerificationError, match="self-signed"):
        await exchange(
            identity.server_ssl_context(), client_ssl_context(), server_hostname="localhost"
        )


async def test_self_signed_identity_with_attributes_and_a_pinned_client(
    memory_store: KeyringSecretStore,
) -> None:
    identity = TLSIdentity.create(
        "attrs",
        {"common_name": "peer-1.local", "organization": "Peerbase", "country": "DE"},
        store=memory_store,
    )

    result = await exchange(
        identity.server_ssl_context(), client_ssl_context(pinned_certificate=identity.cert_pem())
    )

    assert result.reply == b"PING"
    assert result.server_cert_der == identity.cert_der()


async def test_pinning_another_certificate_fails_the_handshake(
    memory_store: KeyringSecretStore,
) -> None:
    server = TLSIdentity.create("server", {"common_name": "server"}, store=memory_store)
    other = TLSIdentity.create("other", {"common_name": "server"}, store=memory_store)

    with pytest.raises(ssl.SSLCertVerificationError):
        await exchange(
            server.server_ssl_context(), client_ssl_context(pinned_certificate=other.certificate)
        )


async def test_imported_pkcs12_with_a_ca_chain(memory_store: KeyringSecretStore) -> None:
    root = make_ca("Throwaway Root")
    intermediate = make_ca("Throwaway Intermediate", root)
    leaf = make_leaf("imported-peer", intermediate)
    data = make_pkcs12(leaf, [intermediate.cert, root.cert], b"s3cret")
    identity = TLSIdentity.import_pkcs12(data, "s3cret", "imported", store=memory_store)
    server_context = identity.server_ssl_context()

    by_root = await exchange(server_context, client_ssl_context(trusted_roots=[root.cert]))
    # A pin matches any certificate of the chain: the leaf, the intermediate or the root.
    pins = [leaf.cert, intermediate.cert, root.cert]
    by_pin = [
        await exchange(server_context, client_ssl_context(pinned_certificate=pin)) for pin in pins
    ]

    assert by_root.reply == b"PING"
    assert [result.reply for result in by_pin] == [b"PING"] * 3
    assert all(result.server_cert_der == identity.cert_der() for result in by_pin)


def _ca_signed_identity(store: KeyringSecretStore) -> TLSIdentity:
    root = make_ca("Throwaway Root")
    leaf = make_leaf("ca-signed-peer", root)
    return TLSIdentity.import_pkcs12(
        make_pkcs12(leaf, [root.cert], b"pw"), b"pw", "ca-signed", store=store
    )


async def test_trusted_roots_refuse_a_chain_from_another_ca(
    memory_store: KeyringSecretStore,
) -> None:
    identity = _ca_signed_identity(memory_store)
    stranger = make_ca("Someone Else")

    with pytest.raises(ssl.SSLCertVerificationError):
        await exchange(
            identity.server_ssl_context(), client_ssl_context(trusted_roots=[stranger.cert])
        )


async def test_self_signed_only_refuses_a_ca_signed_server(
    memory_store: KeyringSecretStore,
) -> None:
    identity = _ca_signed_identity(memory_store)

    with pytest.raises(CertificateVerificationError, match="only self-signed") as caught:
        await exchange(
            identity.server_ssl_context(), client_ssl_context(accept_only_self_signed=True)
        )
    assert isinstance(caught.value, ssl.SSLCertVerificationError)
    assert "Throwaway Root" in str(caught.value)


def test_self_signed_only_check_also_runs_for_blocking_sockets(
    memory_store: KeyringSecretStore,
) -> None:
    server_context = _ca_signed_identity(memory_store).server_ssl_context()
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with contextlib.suppress(OSError), conn:
            server_context.wrap_socket(conn, server_side=True).recv(1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with (
            socket.create_connection(listener.getsockname()) as raw,
            pytest.raises(CertificateVerificationError, match="only self-signed"),
        ):
            client_ssl_context(accept_only_self_signed=True).wrap_socket(raw)
    finally:
        thread.join(5)
        listener.close()


async def test_required_client_certificate_accepted(memory_store: KeyringSecretStore) -> None:
    server = TLSIdentity.create("server", {"common_name": "server"}, store=memory_store)
    client = TLSIdentity.create(
        "client", {"common_name": "client-7"}, key_usages=KeyUsage.CLIENT, store=memory_store
    )
    server_context = server.server_ssl_context(
        require_client_cert=True, client_ca_certs=[client.certificate]
    )

    result = await exchange(
        server_context, client.client_ssl_context(pinned_certificate=server.cert_der())
    )

    assert result.reply == b"PING"
    assert result.server_saw_client_cert is not None
    assert result.server_saw_client_cert["subject"] == ((("commonName", "client-7"),),)


async def test_required_client_certificate_missing_or_unknown_is_refused(
    memory_store: KeyringSecretStore,
) -> None:
    server = TLSIdentity.create("server", {"common_name": "server"}, store=memory_store)
    known = TLSIdentity.create("known", {"common_name": "known"}, store=memory_store)
    stranger = TLSIdentity.create("stranger", {"common_name": "stranger"}, store=memory_store)
    server_context = server.server_ssl_context(
        require_client_cert=True, client_ca_certs=[known.certificate]
    )
    handled: list[dict[str, object] | None] = []

    for client_context in (
        client_ssl_context(pinned_certificate=server.certificate),  # no certificate at all
        stranger.client_ssl_context(pinned_certificate=server.certificate),
    ):
        with pytest.raises(REFUSED):
            await exchange(server_context, client_context, seen=handled)

    assert handled == []


def test_require_client_cert_needs_the_certificates_to_accept(
    memory_store: KeyringSecretStore,
) -> None:
    server = TLSIdentity.create("server", {"common_name": "server"}, store=memory_store)

    with pytest.raises(ValueError, match="client_ca_certs"):
        server.server_ssl_context(require_client_cert=True)


async def test_tls_1_1_client_is_refused(memory_store: KeyringSecretStore) -> None:
    identity = TLSIdentity.get_or_create_anonymous(store=memory_store)
    strict = identity.server_ssl_context()
    # The same identity with TLS 1.0+ allowed: shows the old client really speaks TLS 1.1.
    lax = identity.server_ssl_context()
    lax.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        lax.minimum_version = ssl.TLSVersion.TLSv1

    assert strict.minimum_version == ssl.TLSVersion.TLSv1_2
    with pytest.raises(REFUSED):
        await exchange(strict, _tls_1_1_client())
    # Some OpenSSL builds cannot make a TLS 1.1 client at all; then the refusal above
    # still holds but proves less, and the control handshake fails as well.
    try:
        control = await exchange(lax, _tls_1_1_client())
    except REFUSED:
        return
    assert control.version == "TLSv1.1"


def _tls_1_1_client() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1_1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    return context


def test_all_contexts_require_tls_1_2(memory_store: KeyringSecretStore) -> None:
    identity = TLSIdentity.get_or_create_anonymous(store=memory_store)

    contexts = [
        identity.server_ssl_context(),
        client_ssl_context(),
        client_ssl_context(accept_only_self_signed=True),
        client_ssl_context(pinned_certificate=identity.certificate),
        identity.client_ssl_context(trusted_roots=[identity.certificate]),
    ]

    assert {context.minimum_version for context in contexts} == {ssl.TLSVersion.TLSv1_2}


def test_contradictory_client_options_are_refused(memory_store: KeyringSecretStore) -> None:
    identity = TLSIdentity.get_or_create_anonymous(store=memory_store)

    with pytest.raises(ValueError, match="excludes"):
        client_ssl_context(accept_only_self_signed=True, trusted_roots=[identity.certificate])
    with pytest.raises(ValueError, match="excludes"):
        client_ssl_context(pinned_certificate=identity.certificate, trusted_roots=[b"x"])
    with pytest.raises(ValueError, match="empty"):
        client_ssl_context(trusted_roots=[])


def test_expired_identity_is_refused_at_server_context_build(
    memory_store: KeyringSecretStore,
) -> None:
    old = make_self_signed(
        "old-peer", not_before=NOW - dt.timedelta(days=400), not_after=NOW - dt.timedelta(days=1)
    )
    identity = TLSIdentity.import_pkcs12(
        make_pkcs12(old, [], None), None, "old", store=memory_store
    )

    assert identity.is_expired
    with pytest.raises(IdentityExpiredError, match="'old' expired on") as caught:
        identity.server_ssl_context()
    assert caught.value.hint
    with pytest.raises(IdentityExpiredError):
        identity.client_ssl_context(accept_only_self_signed=True)


async def test_identity_expiring_soon_still_serves_and_is_reported(
    memory_store: KeyringSecretStore, caplog: pytest.LogCaptureFixture
) -> None:
    identity = TLSIdentity.create(
        "soon",
        {"common_name": "soon"},
        expiration=dt.datetime.now(dt.UTC) + dt.timedelta(days=10, hours=1),
        store=memory_store,
    )

    with caplog.at_level("WARNING", logger="engine.tls.identity"):
        result = await exchange(
            identity.server_ssl_context(), client_ssl_context(accept_only_self_signed=True)
        )

    assert result.reply == b"PING"
    assert identity.is_expiring_soon
    assert "expires on" in caplog.text
    assert "in 10 days" in caplog.text
