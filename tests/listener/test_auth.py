"""Authentication: HTTP Basic (right, wrong, missing; throttled), client certificates."""

from __future__ import annotations

import hashlib

import pytest

from engine.listener import (
    ConnectionOpened,
    ConnectionRefused,
    FailureThrottle,
    ListenerCertificateAuthenticator,
    ListenerConfigError,
    ListenerEvent,
    ListenerPasswordAuthenticator,
    URLEndpointListenerConfiguration,
    check_password,
    fixed_credentials,
    parse_basic_authorization,
)
from engine.replication import (
    AuthenticationError,
    BasicAuthenticator,
    ClientCertificateAuthenticator,
)
from engine.store import Database
from engine.tls import TLSIdentity
from tests.listener.conftest import (
    MemoryKeyring,
    doc_ids,
    put_docs,
    raw_request,
    replicate,
    url_for,
)

UNAUTHORIZED_BODY = b'{"status":401,"error":"Unauthorized"}'


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- Basic ---------------------------------------------------------------------------------


async def test_basic_auth_right_password_replicates(
    make_listener, server_db: Database, client_db: Database
) -> None:
    auth = ListenerPasswordAuthenticator(fixed_credentials("u", "pw"))
    listener = await make_listener(disable_tls=True, authenticator=auth)
    events: list[ListenerEvent] = []
    listener.add_event_listener(events.append)
    put_docs(client_db.default_collection(), "cli", 2)
    put_docs(server_db.default_collection(), "srv", 1)

    status = await replicate(
        client_db, url_for(listener), authenticator=BasicAuthenticator("u", "pw")
    )

    assert status.error is None, status.error
    assert doc_ids(server_db.default_collection()) == {"cli-0", "cli-1", "srv-0"}
    assert doc_ids(client_db.default_collection()) == {"cli-0", "cli-1", "srv-0"}
    opened = [e for e in events if isinstance(e, ConnectionOpened)]
    assert [(e.user, e.peer_address) for e in opened] == [("u", "127.0.0.1")]


@pytest.mark.parametrize("credentials", [("u", "wrong"), ("other", "pw"), None])
async def test_basic_auth_wrong_or_missing_is_401_and_permanent(
    make_listener, server_db: Database, client_db: Database, credentials
) -> None:
    auth = ListenerPasswordAuthenticator(
        fixed_credentials("u", "pw"), throttle=FailureThrottle(base=0.0, cap=0.0)
    )
    listener = await make_listener(disable_tls=True, authenticator=auth)
    put_docs(client_db.default_collection(), "cli", 1)
    authenticator = BasicAuthenticator(*credentials) if credentials else None

    status = await replicate(client_db, url_for(listener), authenticator=authenticator)

    assert isinstance(status.error, AuthenticationError), status.error
    assert status.error.code == 401
    assert doc_ids(server_db.default_collection()) == set()
    assert auth.throttle.failures("127.0.0.1") == 1  # one attempt: no retry


async def test_401_answer_is_what_couchbase_lite_sends(memory_keyring, make_listener) -> None:
    auth = ListenerPasswordAuthenticator(fixed_credentials("u", "pw"))
    listener = await make_listener(authenticator=auth)
    for headers in ({}, {"Authorization": "Basic dTpiYWQ="}):  # none, then u:bad
        answer = await raw_request(listener.port, "/served/_blipsync", headers, tls=True)
        assert answer.status == 401
        assert answer.headers["WWW-Authenticate"] == 'Basic charset="UTF-8"'
        assert answer.headers["Content-Type"] == "application/json"
        assert answer.body == UNAUTHORIZED_BODY


async def test_async_callback_and_refused_event(make_listener, client_db: Database) -> None:
    seen: list[tuple[str, str]] = []

    async def callback(user: str, password: str) -> bool:
        seen.append((user, password))
        return password == "sesame"

    auth = ListenerPasswordAuthenticator(callback, throttle=FailureThrottle(base=0.0, cap=0.0))
    listener = await make_listener(disable_tls=True, authenticator=auth)
    events: list[ListenerEvent] = []
    listener.add_event_listener(events.append)

    bad = await replicate(client_db, url_for(listener), authenticator=BasicAuthenticator("a", "x"))
    good = await replicate(
        client_db, url_for(listener), authenticator=BasicAuthenticator("a", "sesame")
    )

    assert isinstance(bad.error, AuthenticationError)
    assert good.error is None
    assert seen == [("a", "x"), ("a", "sesame")]
    refused = [e for e in events if isinstance(e, ConnectionRefused)]
    assert [(e.status, e.peer_address) for e in refused] == [(401, "127.0.0.1")]
    assert refused[0].to_dict()["event"] == "connection-refused"


async def test_repeated_failures_from_one_address_are_slowed(make_listener) -> None:
    throttle = FailureThrottle(base=0.01, cap=0.04)
    auth = ListenerPasswordAuthenticator(fixed_credentials("u", "pw"), throttle=throttle)
    listener = await make_listener(disable_tls=True, authenticator=auth)
    delays = []
    for _ in range(4):
        delays.append(throttle.delay("127.0.0.1"))
        answer = await raw_request(listener.port, "/served", {"Authorization": "Basic dTp4"})
        assert answer.status == 401
    assert delays == [0.0, 0.01, 0.02, 0.04]
    assert throttle.delay("127.0.0.1") == 0.04  # capped
    ok = await raw_request(listener.port, "/served", {"Authorization": "Basic dTpwdw=="})
    assert ok.status == 101
    assert throttle.delay("127.0.0.1") == 0.0  # success forgets the failures


def test_throttle_backs_off_exponentially_per_address_and_forgets() -> None:
    clock = FakeClock()
    throttle = FailureThrottle(base=0.5, cap=4.0, forget_after=60.0, clock=clock)
    delays = []
    for _ in range(6):
        throttle.failed("10.0.0.1")
        delays.append(throttle.delay("10.0.0.1"))
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert throttle.delay("10.0.0.2") == 0.0  # other addresses are not affected
    clock.now += 59.0
    assert throttle.delay("10.0.0.1") == 4.0
    clock.now += 1.0
    assert throttle.delay("10.0.0.1") == 0.0
    assert throttle.failures("10.0.0.1") == 0


def test_throttle_memory_is_bounded() -> None:
    clock = FakeClock()
    throttle = FailureThrottle(clock=clock, max_addresses=3)
    for i in range(10):
        clock.now += 1
        throttle.failed(f"10.0.0.{i}")
    assert [throttle.failures(f"10.0.0.{i}") for i in range(10)] == [0] * 7 + [1] * 3


def test_password_helpers() -> None:
    check = fixed_credentials("user", "pä55")
    assert check("user", "pä55")
    assert not check("user", "pä5")
    assert not check("User", "pä55")
    assert not check("", "")
    assert check_password("x", "x") and not check_password("x", "y")
    assert parse_basic_authorization("Basic dTpwdw==") == ("u", "pw")
    assert parse_basic_authorization("basic dTpwOjp4") == ("u", "p::x")
    assert parse_basic_authorization("Basic dXNlcg==") is None  # no colon
    assert parse_basic_authorization("Basic !!!") is None
    assert parse_basic_authorization("Bearer dTpwdw==") is None
    assert parse_basic_authorization(None) is None


# -- client certificates -------------------------------------------------------------------


async def test_client_certificate_accepted(
    memory_keyring: MemoryKeyring, make_listener, server_db: Database, client_db: Database
) -> None:
    client = TLSIdentity.create("client", {"common_name": "client-1"})
    listener = await make_listener(
        authenticator=ListenerCertificateAuthenticator(root_certs=[client.cert_der()])
    )
    events: list[ListenerEvent] = []
    listener.add_event_listener(events.append)
    put_docs(client_db.default_collection(), "cli", 2)

    status = await replicate(
        client_db,
        url_for(listener),
        authenticator=ClientCertificateAuthenticator(client),
        accept_only_self_signed_server_certificate=True,
    )

    assert status.error is None, status.error
    assert doc_ids(server_db.default_collection()) == {"cli-0", "cli-1"}
    opened = [e for e in events if isinstance(e, ConnectionOpened)]
    assert opened[0].certificate is not None
    assert opened[0].certificate.fingerprint == client.fingerprint
    assert "CN=client-1" in opened[0].certificate.subject


@pytest.mark.parametrize("who", ["stranger", "nobody"])
async def test_client_certificate_unknown_or_missing_is_refused(
    memory_keyring: MemoryKeyring, make_listener, server_db: Database, client_db: Database, who
) -> None:
    client = TLSIdentity.create("client", {"common_name": "client-1"})
    stranger = TLSIdentity.create("stranger", {"common_name": "stranger"})
    listener = await make_listener(
        authenticator=ListenerCertificateAuthenticator(root_certs=[client.cert_der()])
    )
    events: list[ListenerEvent] = []
    listener.add_event_listener(events.append)
    put_docs(client_db.default_collection(), "cli", 1)
    auth = ClientCertificateAuthenticator(stranger) if who == "stranger" else None

    status = await replicate(
        client_db,
        url_for(listener),
        authenticator=auth,
        accept_only_self_signed_server_certificate=True,
        max_attempts=1,
    )

    assert status.error is not None
    assert doc_ids(server_db.default_collection()) == set()
    assert not [e for e in events if isinstance(e, ConnectionOpened)]


async def test_client_certificate_callback_refuses(
    memory_keyring: MemoryKeyring, make_listener, server_db: Database, client_db: Database
) -> None:
    client = TLSIdentity.create("client", {"common_name": "client-1"})
    chains: list[list[bytes]] = []

    def callback(chain: list[bytes]) -> bool:
        chains.append(chain)
        return False

    listener = await make_listener(
        authenticator=ListenerCertificateAuthenticator(
            root_certs=[client.cert_der()],
            callback=callback,
            throttle=FailureThrottle(base=0.0, cap=0.0),
        )
    )
    put_docs(client_db.default_collection(), "cli", 1)

    status = await replicate(
        client_db,
        url_for(listener),
        authenticator=ClientCertificateAuthenticator(client),
        accept_only_self_signed_server_certificate=True,
    )

    assert isinstance(status.error, AuthenticationError), status.error
    assert chains == [[client.cert_der()]]
    assert doc_ids(server_db.default_collection()) == set()


def test_certificate_authenticator_configuration(server_db: Database) -> None:
    with pytest.raises(ListenerConfigError, match="needs TLS"):
        URLEndpointListenerConfiguration(
            [server_db.default_collection()],
            disable_tls=True,
            authenticator=ListenerCertificateAuthenticator(root_certs=[b"x"]),
        )
    with pytest.raises(ValueError, match="root_certs or a callback"):
        ListenerCertificateAuthenticator()


async def test_client_certificate_callback_alone_decides(
    memory_keyring: MemoryKeyring, make_listener, server_db: Database, client_db: Database
) -> None:
    """No roots: any certificate passes TLS; the callback accepts one fingerprint only."""
    friend = TLSIdentity.create("friend", {"common_name": "friend"})
    stranger = TLSIdentity.create("stranger", {"common_name": "stranger"})
    seen: list[str] = []

    async def callback(chain: list[bytes]) -> bool:
        seen.append(hashlib.sha256(chain[0]).hexdigest())
        return seen[-1] == friend.fingerprint

    listener = await make_listener(
        authenticator=ListenerCertificateAuthenticator(
            callback=callback, throttle=FailureThrottle(base=0.0, cap=0.0)
        )
    )
    put_docs(client_db.default_collection(), "cli", 1)
    options = {"accept_only_self_signed_server_certificate": True, "max_attempts": 1}

    refused = await replicate(
        client_db, url_for(listener), authenticator=ClientCertificateAuthenticator(stranger),
        **options,
    )  # fmt: skip
    assert isinstance(refused.error, AuthenticationError), refused.error
    assert doc_ids(server_db.default_collection()) == set()
    no_cert = await replicate(client_db, url_for(listener), **options)
    assert no_cert.error is not None  # still required at the TLS layer
    accepted = await replicate(
        client_db, url_for(listener), authenticator=ClientCertificateAuthenticator(friend),
        **options,
    )  # fmt: skip
    assert accepted.error is None, accepted.error
    assert doc_ids(server_db.default_collection()) == {"cli-0"}
    assert seen == [stranger.fingerprint, friend.fingerprint]
