"""Event objects: JSON form, human lines, the event hub."""

from __future__ import annotations

import orjson

from engine.cli.listen_commands import describe
from engine.listener import (
    CertificateInfo,
    ConnectionClosed,
    ConnectionOpened,
    ConnectionRefused,
    ReplicationDirection,
)
from engine.listener.events import EventHub, ListenerEvent


def test_to_dict_is_json_ready() -> None:
    cert = CertificateInfo("CN=client", "ab" * 32)
    opened = ConnectionOpened(1, "10.0.0.5", None, cert)
    closed = ConnectionClosed(1, "10.0.0.5", "u", None, ("pull", "push"), 1000, "", True, 2, 3)
    assert orjson.loads(orjson.dumps(opened.to_dict())) == {
        "event": "connection-opened",
        "connection_id": 1,
        "peer_address": "10.0.0.5",
        "user": None,
        "certificate": {"subject": "CN=client", "fingerprint": "ab" * 32},
    }
    assert closed.to_dict()["directions"] == ["pull", "push"]
    assert closed.to_dict()["docs_received"] == 2 and closed.to_dict()["docs_sent"] == 3


def test_human_lines() -> None:
    assert describe(ConnectionOpened(3, "10.0.0.5", "alice")) == (
        "#3 connected from 10.0.0.5 as 'alice'"
    )
    assert describe(ReplicationDirection(3, "10.0.0.5", "push")) == "#3 10.0.0.5 is pushing"
    assert "closed by listener, code 1001" in describe(
        ConnectionClosed(3, "10.0.0.5", code=1001, by_peer=False)
    )
    assert describe(ConnectionRefused("10.0.0.6", 401, "no credentials", "/db")) == (
        "refused 10.0.0.6 '/db': 401 no credentials"
    )


def test_hub_isolates_failing_callbacks_and_unsubscribes() -> None:
    hub = EventHub()
    got: list[ListenerEvent] = []

    def broken(event: ListenerEvent) -> None:
        raise RuntimeError("boom")

    hub.add(broken)
    token = hub.add(got.append)
    event = ReplicationDirection(1, "x", "pull")
    hub.emit(event)
    token.remove()
    hub.emit(event)
    assert got == [event]
