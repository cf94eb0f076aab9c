"""Fixtures: databases and passive peers served over real WebSockets on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from engine import blip
from engine.replication import (
    ReplicationSession,
    Replicator,
    ReplicatorConfiguration,
    ReplicatorStatus,
    ReplicatorType,
    SessionOptions,
    URLEndpoint,
    server_header,
)
from engine.store import Collection, Database, MutableDocument


class Peer:
    """A database served by a passive replication endpoint."""

    def __init__(
        self, db: Database, collections: Sequence[Collection], options: SessionOptions
    ) -> None:
        self.db = db
        self.collections = list(collections)
        self.options = options
        self.sessions: list[ReplicationSession] = []
        self.server: Any = None
        self.url = ""

    async def start(self) -> None:
        async def on_connection(conn: blip.BlipConnection) -> None:
            self.sessions.append(
                ReplicationSession(
                    conn, self.db, active=False, collections=self.collections, options=self.options
                )
            )

        self.server = await blip.serve(
            on_connection, "127.0.0.1", 0, server_header=server_header(self.options)
        )
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/{self.db.name}"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        for session in self.sessions:
            await session.close()


@pytest.fixture
def make_db(tmp_path: Path) -> Iterator[Callable[[str], Database]]:
    opened: list[Database] = []

    def make(name: str) -> Database:
        db = Database(name, tmp_path)
        opened.append(db)
        return db

    yield make
    for db in opened:
        db.close()


@pytest.fixture(params=[True, False], ids=["revs-batches", "one-rev-each"])
def rev_batches(request: pytest.FixtureRequest) -> bool:
    """Both ways Peerbase peers send revisions: `revs` batches, and the standard `rev`.

    A test module opts in with ``pytestmark = pytest.mark.usefixtures("rev_batches")``;
    its peers then take (or not) `revs` batches unless a test says otherwise.
    """
    return bool(request.param)


@pytest.fixture
async def make_peer(request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., Any]]:
    peers: list[Peer] = []
    default_batches = (
        bool(request.getfixturevalue("rev_batches"))
        if "rev_batches" in request.fixturenames
        else True
    )

    async def make(
        db: Database, collections: Sequence[Collection] | None = None, **options: Any
    ) -> Peer:
        options.setdefault("rev_batches", default_batches)
        peer = Peer(db, collections or [db.default_collection()], SessionOptions(**options))
        await peer.start()
        peers.append(peer)
        return peer

    yield make
    for peer in peers:
        await peer.stop()


async def replicate(
    url: str,
    collections: Any,
    replicator_type: ReplicatorType = ReplicatorType.PUSH_AND_PULL,
    **options: Any,
) -> tuple[Replicator, ReplicatorStatus]:
    """Run a one-shot replication to the end; returns the replicator and its final status."""
    config = ReplicatorConfiguration(
        URLEndpoint(url), collections, replicator_type=replicator_type, **options
    )
    replicator = Replicator(config)
    replicator.start()
    status = await replicator.wait_stopped(60)
    return replicator, status


def fill(coll: Collection, count: int, prefix: str = "doc", **extra: Any) -> None:
    with coll.database.in_batch():
        for i in range(count):
            coll.save(MutableDocument(f"{prefix}-{i:05d}", {"n": i, **extra}))


def snapshot(coll: Collection) -> dict[str, tuple[str | None, bool, dict[str, Any]]]:
    """{doc_id: (current revID, deleted, body)} of every document, tombstones included."""
    return {
        d.id: (d.rev_id, d.deleted, d.properties) for d in coll.iter_documents(include_deleted=True)
    }
