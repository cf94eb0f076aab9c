"""Property: three peers editing and syncing in any order end up identical, losing nothing."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.replication import ReplicatorType
from engine.store import Database, MutableDocument

from .conftest import Peer, replicate, snapshot

PEERS = 3
DOCS = ["a", "b", "c"]
DIRECTIONS = [ReplicatorType.PUSH, ReplicatorType.PULL, ReplicatorType.PUSH_AND_PULL]

op = st.one_of(
    st.tuples(st.just("put"), st.integers(0, PEERS - 1), st.sampled_from(DOCS)),
    st.tuples(st.just("delete"), st.integers(0, PEERS - 1), st.sampled_from(DOCS)),
    st.tuples(
        st.just("sync"),
        st.integers(0, PEERS - 1),
        st.integers(1, PEERS - 1),
        st.sampled_from(DIRECTIONS),
    ),
)


async def _run(ops: list[tuple[Any, ...]], directory: Path) -> None:
    dbs = [Database(f"peer{i}", directory) for i in range(PEERS)]
    peers = [Peer(db, [db.default_collection()], _options()) for db in dbs]
    for peer in peers:
        await peer.start()
    written: dict[str, list[Any]] = {d: [] for d in DOCS}
    last_write: dict[str, Any] = {}
    conflicts = 0
    counter = 0
    try:
        for item in ops:
            if item[0] == "put":
                _, who, doc_id = item
                counter += 1
                coll = dbs[who].default_collection()
                existing = coll.get_document(doc_id, include_deleted=True)
                doc = existing.to_mutable() if existing else MutableDocument(doc_id)
                doc.set_data({"v": counter, "by": who})
                coll.save(doc)
                written[doc_id].append({"v": counter, "by": who})
                last_write[doc_id] = {"v": counter, "by": who}
            elif item[0] == "delete":
                _, who, doc_id = item
                coll = dbs[who].default_collection()
                if coll.get_document(doc_id) is not None:
                    coll.delete(doc_id)
                    last_write[doc_id] = None
            else:
                _, active, offset, direction = item
                passive = (active + offset) % PEERS
                conflicts += await _sync(dbs[active], peers[passive], direction)
        for _ in range(6):  # settle: push-and-pull between every pair until quiet
            before = [snapshot(db.default_collection()) for db in dbs]
            for a in range(PEERS):
                for b in range(a + 1, PEERS):
                    conflicts += await _sync(dbs[a], peers[b], ReplicatorType.PUSH_AND_PULL)
            after = [snapshot(db.default_collection()) for db in dbs]
            if before == after and all(s == after[0] for s in after):
                break
        # Live documents are identical everywhere. A tombstone may be missing on a peer
        # that never had the document (activeOnly pulls skip tombstones, as in Couchbase
        # Lite), but where present it is the same revision.
        states = [_current(db) for db in dbs]
        live = [{k: v for k, v in s.items() if not v[1]} for s in states]
        assert live[0] == live[1] == live[2], states
        for doc_id in {k for s in states for k in s}:
            tombstones = {s[doc_id][0] for s in states if doc_id in s and s[doc_id][1]}
            assert len(tombstones) <= 1 and not (tombstones and doc_id in live[0]), states
        for doc_id in DOCS:
            final = live[0].get(doc_id)
            if final is not None:
                assert final[2] in written[doc_id], (doc_id, final)  # nothing invented
            if conflicts == 0:  # writes were ordered: the last one must have won
                expected = last_write.get(doc_id)
                assert (final[2] if final else None) == expected, (doc_id, final, expected)
    finally:
        for peer in peers:
            await peer.stop()
        for db in dbs:
            db.close()


def _options() -> Any:
    from engine.replication import SessionOptions

    return SessionOptions()


def _current(db: Database) -> dict[str, tuple[str | None, bool, dict[str, Any]]]:
    return {k: v for k, v in snapshot(db.default_collection()).items()}


async def _sync(db: Database, peer: Peer, direction: ReplicatorType) -> int:
    replicator, status = await replicate(peer.url, [db.default_collection()], direction)
    assert status.error is None, status.error
    assert status.progress.completed == status.progress.total
    return replicator.statistics.conflicts_resolved


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, min_size=1, max_size=14))
def test_three_peers_converge(ops: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_run(ops, Path(tmp)))
