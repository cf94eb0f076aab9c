"""Every TLS mode of the listener, each with a real replication over 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import hashlib
import ssl

import pytest

from engine import blip
from engine.listener import IdentityExpiring, ListenerEvent
from engine.replication import CertificateError, Replicator, ReplicatorConfiguration, URLEndpoint
from engine.store import Database
from engine.tls import (
    ANONYMOUS_LABEL,
    IdentityExpiredError,
    TLSIdentity,
    client_ssl_context,
    fingerprint,
)
from tests.listener.conftest import MemoryKeyring, doc_ids, put_docs, replicate, url_for
from tests.tls.pki import NOW, der, make_ca, make_leaf, make_pkcs12, make_self_signed
from tests.tls.test_handshake import _tls_1_1_client


async def _push_two(client_db: Database, url: str, **options: object) -> None:
    put_docs(client_db.default_collection(), "cli", 2)
    status = await replicate(client_db, url, **options)
    assert status.error is None, status.error


async def test_anonymous_identity_is_default_persisted_and_reused(
    keyring_backend: object, make_listener, server_db: Database, client_db: Database
) -> None:
    # Runs on the in-memory keyring and on the real Secret Service (gnome-keyring).
    if ANONYMOUS_LABEL in TLSIdentity.list():  # left by another test on the shared service
        TLSIdentity.delete(ANONYMOUS_LABEL)
    first = await make_listener()
    identity = first.tls_identity
    assert identity is not None and identity.label == ANONYMOUS_LABEL
    assert all(u.startswith("wss://") for u in first.urls)
    await first.stop()
    assert first.tls_identity is None and first.port == 0 and first.urls == []

    second = await make_listener()
    assert second.tls_identity is not None
    assert second.tls_identity.fingerprint == identity.fingerprint
    assert TLSIdentity.list() == [ANONYMOUS_LABEL]

    put_docs(client_db.default_collection(), "cli", 2)
    replicator = Replicator(
        ReplicatorConfiguration(
            target=URLEndpoint(url_for(second)),
            collections=[client_db.default_collection()],
            accept_only_self_signed_server_certificate=True,
        )
    )
    replicator.start()
    status = await replicator.wait_stopped(20)
    assert status.error is None, status.error
    assert replicator.server_certificate == identity.cert_der()
    assert doc_ids(server_db.default_collection()) == {"cli-0", "cli-1"}
    TLSIdentity.delete(ANONYMOUS_LABEL)


async def test_self_signed_identity_with_attributes(
    memory_keyring: MemoryKeyring, make_listener, server_db: Database, client_db: Database
) -> None:
    identity = TLSIdentity.create(
        "attrs", {"common_name": "peer-1.local", "organization": "Peerbase", "country": "DE"}
    )
    listener = await make_listener(tls_identity=identity)
    assert listener.tls_identity == identity

    await _push_two(client_db, url_for(listener), accept_only_self_signed_server_certificate=True)
    assert doc_ids(server_db.default_collection()) == {"cli-0", "cli-1"}
    assert identity.subject["organization"] == "Peerbase"


async def test_pinned_certificate_right_and_wrong(
    memory_keyring: MemoryKeyring, make_listener, server_db: Database, client_db: Database
) -> None:
    identity = TLSIdentity.create("pinned", {"common_name": "pinned"})
    other = TLSIdentity.create("other", {"common_name": "other"})
    listener = await make_listener(tls_identity=identity)

    await _push_two(client_db, url_for(listener), pinned_server_certificate=identity.cert_pem())
    assert doc_ids(server_db.default_collection()) == {"cli-0", "cli-1"}

    put_docs(client_db.default_collection(), "more", 1)
    wrong = await replicate(
        client_db, url_for(listener), pinned_server_certificate=other.cert_der()
    )
    assert isinstance(wrong.error, CertificateError), wrong.error
    assert "more-0" not in doc_ids(server_db.default_collection())


async def test_imported_pkcs12_with_a_throwaway_ca(
    memory_keyring: MemoryKeyring, make_listener, server_db: Database, client_db: Database
) -> None:
    root = make_ca("Listener Test Root")
    leaf = make_leaf("listener-peer", root)
    identity = TLSIdentity.import_pkcs12(make_pkcs12(leaf, [root.cert], b"pw"), "pw", "imported")
    listener = await make_listener(tls_identity=identity)

    await _push_two(client_db, url_for(listener), trusted_root_certificates=[der(root.cert)])
    assert doc_ids(server_db.default_collection()) == {"cli-0", "cli-1"}

    # Self-signed-only refuses the CA-signed certificate.
    put_docs(client_db.default_collection(), "more", 1)
    refused = await replicate(
        client_db, url_for(listener), accept_only_self_signed_server_certificate=True
    )
    assert isinstance(refused.error, CertificateError), refused.error
    assert "self-signed" in str(refused.error)
    assert "more-0" not in doc_ids(server_db.default_collection())


async def test_expired_identity_refused_at_start(
    memory_keyring: MemoryKeyring, make_listener
) -> None:
    old = make_self_signed(
        "old", not_before=NOW - dt.timedelta(days=400), not_after=NOW - dt.timedelta(days=1)
    )
    identity = TLSIdentity.import_pkcs12(make_pkcs12(old, [], None), None, "old")
    with pytest.raises(IdentityExpiredError, match="'old' expired on") as caught:
        await make_listener(tls_identity=identity)
    assert caught.value.hint


async def test_identity_expiring_soon_is_reported(
    memory_keyring: MemoryKeyring, server_db: Database
) -> None:
    from engine.listener import URLEndpointListener, URLEndpointListenerConfiguration

    identity = TLSIdentity.create(
        "soon",
        {"common_name": "soon"},
        expiration=dt.datetime.now(dt.UTC) + dt.timedelta(days=10, hours=1),
    )
    listener = URLEndpointListener(
        URLEndpointListenerConfiguration([server_db.default_collection()], tls_identity=identity)
    )
    events: list[ListenerEvent] = []
    listener.add_event_listener(events.append)
    await listener.start()
    try:
        assert listener.expiry_warning is not None and "in 10 days" in listener.expiry_warning
        warnings_seen = [e for e in events if isinstance(e, IdentityExpiring)]
        assert [w.label for w in warnings_seen] == ["soon"]
        assert warnings_seen[0].to_dict()["event"] == "identity-expiring"
    finally:
        await listener.stop()


async def test_tls_1_1_client_is_refused(memory_keyring: MemoryKeyring, make_listener) -> None:
    listener = await make_listener()
    context = _tls_1_1_client()
    with pytest.raises((ssl.SSLError, ConnectionError, EOFError)):
        await blip.connect(url_for(listener) + "/_blipsync", ssl=context, open_timeout=5)
    # The same client without the version cap gets in (so the refusal was the version).
    ok = client_ssl_context(accept_only_self_signed=True)
    conn = await blip.connect(url_for(listener) + "/_blipsync", ssl=ok, open_timeout=5)
    assert conn.websocket.transport.get_extra_info("ssl_object").version() in (
        "TLSv1.2",
        "TLSv1.3",
    )
    await conn.close()


async def test_plain_ws_to_a_tls_listener_is_refused(
    memory_keyring: MemoryKeyring, make_listener, server_db: Database, client_db: Database
) -> None:
    listener = await make_listener()
    plain = url_for(listener).replace("wss://", "ws://")
    put_docs(client_db.default_collection(), "cli", 1)
    status = await replicate(client_db, plain, max_attempts=1)
    assert status.error is not None
    assert doc_ids(server_db.default_collection()) == set()
    assert listener.status.connection_count == 0


def test_fingerprint_matches_the_der(memory_keyring: MemoryKeyring) -> None:
    identity = TLSIdentity.get_or_create_anonymous()
    assert identity.fingerprint == hashlib.sha256(identity.cert_der()).hexdigest()
    assert fingerprint(identity.certificate) == identity.fingerprint
