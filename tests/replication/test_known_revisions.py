"""A passive Peerbase peer does not offer a Peerbase client what it is known to hold."""

from __future__ import annotations

from typing import Any

import pytest

from engine.replication import Replicator, ReplicatorConfiguration, URLEndpoint
from engine.replication.messages import decode_changes
from engine.replication.receiver import Receiver

from .conftest import fill, snapshot


@pytest.fixture
def offered(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sizes of the `changes` messages the active side receives (what the passive offers)."""
    sizes: list[int] = []
    original = Receiver.on_changes

    async def spy(self: Receiver, request: Any) -> Any:
        if self.session.active:
            sizes.append(len(decode_changes(request.body)))
        return await original(self, request)

    monkeypatch.setattr(Receiver, "on_changes", spy)
    return sizes


async def _sync(url: str, coll: Any, *, reset: bool = False) -> Any:
    replicator = Replicator(ReplicatorConfiguration(URLEndpoint(url), [coll]))
    replicator.start(reset_checkpoint=reset)
    status = await replicator.wait_stopped(60)
    assert status.error is None
    return status


async def test_what_the_client_pushed_is_not_offered_back(
    make_db: Any, make_peer: Any, offered: list[int]
) -> None:
    client, server = make_db("client"), make_db("server")
    fill(client.default_collection(), 50, "mine")
    fill(server.default_collection(), 5, "theirs")
    peer = await make_peer(server)
    first = await _sync(peer.url, client.default_collection())
    assert first.progress.completed == 55
    assert snapshot(client.default_collection()) == snapshot(server.default_collection())
    offered.clear()
    # The pushed documents landed after the pull feed caught up: the second sync only
    # offers the last of them, so the client's checkpoint moves past them all.
    second = await _sync(peer.url, client.default_collection())
    assert second.progress.completed == second.progress.total == 0
    assert sum(offered) <= 1
    offered.clear()
    await _sync(peer.url, client.default_collection())
    assert sum(offered) == 0
    # A change made on the server after that is offered as usual.
    server.default_collection().purge("mine-00007")
    fill(server.default_collection(), 1, "later")
    offered.clear()
    await _sync(peer.url, client.default_collection())
    assert sum(offered) == 1
    assert client.default_collection().get_document("later-00000") is not None


async def test_a_reset_checkpoint_is_offered_everything(
    make_db: Any, make_peer: Any, offered: list[int]
) -> None:
    client, server = make_db("client"), make_db("server")
    fill(client.default_collection(), 30, "mine")
    peer = await make_peer(server)
    await _sync(peer.url, client.default_collection())
    client.default_collection().purge("mine-00003")  # gone here, still on the server
    offered.clear()
    await _sync(peer.url, client.default_collection())
    assert client.default_collection().get_document("mine-00003") is None
    offered.clear()
    await _sync(peer.url, client.default_collection(), reset=True)
    assert sum(offered) == 30  # everything, including what the client pushed
    assert client.default_collection().get_document("mine-00003") is not None
