"""The replicator's checkpoint is keyed on the peer's certificate, not on its address."""

from __future__ import annotations

from typing import Any

from engine.replication import Replicator, ReplicatorConfiguration, URLEndpoint
from engine.store import Database

from .conftest import REPLICATION_TIMEOUT, put_docs, url_for


async def _push(db: Database, url: str) -> Replicator:
    replicator = Replicator(
        ReplicatorConfiguration(
            URLEndpoint(url),
            [db.default_collection()],
            accept_only_self_signed_server_certificate=True,
        )
    )
    replicator.start()
    status = await replicator.wait_stopped(REPLICATION_TIMEOUT)
    assert status.error is None, status.error
    return replicator


async def test_checkpoint_survives_an_address_change(
    memory_keyring: Any, make_listener: Any, client_db: Database, server_db: Database
) -> None:
    listener = await make_listener()
    put_docs(client_db.default_collection(), "c", 30)
    first = await _push(client_db, url_for(listener, "127.0.0.1"))
    assert first.statistics.docs_pushed == 30 and first.server_certificate is not None
    put_docs(client_db.default_collection(), "more", 5)
    # The same peer reached by another name: the checkpoint still applies.
    again = await _push(client_db, url_for(listener, "127.0.0.1").replace("127.0.0.1", "localhost"))
    assert again.server_certificate == first.server_certificate
    assert again.statistics.docs_pushed == 5
    assert again.status.progress.total == 5  # nothing already acknowledged was offered again
    assert server_db.default_collection().count == 35
    assert len(client_db.local_ids("checkpoint/")) == 1  # one peer, one checkpoint
