"""Two engines in one process over real WebSockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from engine.replication import (
    ActivityLevel,
    CollectionConfiguration,
    Conflict,
    DocumentFlags,
    DocumentReplication,
    ReplicatorStatus,
    ReplicatorType,
)
from engine.store import Blob, Document, MutableDocument

from .conftest import fill, replicate, snapshot

PUSH, PULL, BOTH = ReplicatorType.PUSH, ReplicatorType.PULL, ReplicatorType.PUSH_AND_PULL

#: Every test runs twice: with `revs` batches (two Peerbase peers) and one `rev` each.
pytestmark = pytest.mark.usefixtures("rev_batches")


async def test_push(make_db: Any, make_peer: Any) -> None:
    client, server = make_db("client"), make_db("server")
    fill(client.default_collection(), 250)
    peer = await make_peer(server)
    replicator, status = await replicate(peer.url, [client.default_collection()], PUSH)
    assert status.error is None and status.activity is ActivityLevel.STOPPED
    assert status.progress.completed == status.progress.total == 250
    assert snapshot(server.default_collection()) == snapshot(client.default_collection())
    assert replicator.statistics.docs_pushed == 250


async def test_pull(make_db: Any, make_peer: Any) -> None:
    client, server = make_db("client"), make_db("server")
    fill(server.default_collection(), 250)
    peer = await make_peer(server)
    replicator, status = await replicate(peer.url, [client.default_collection()], PULL)
    assert status.error is None
    assert status.progress.completed == status.progress.total == 250
    assert snapshot(client.default_collection()) == snapshot(server.default_collection())
    assert replicator.statistics.docs_pulled == 250


async def test_push_and_pull_then_nothing_to_resend(make_db: Any, make_peer: Any) -> None:
    client, server = make_db("client"), make_db("server")
    fill(client.default_collection(), 40, "c")
    fill(server.default_collection(), 60, "s")
    peer = await make_peer(server)
    _first, status = await replicate(peer.url, [client.default_collection()])
    assert status.error is None and status.progress.completed == status.progress.total == 100
    assert snapshot(client.default_collection()) == snapshot(server.default_collection())
    again, status = await replicate(peer.url, [client.default_collection()])
    assert status.error is None
    assert again.statistics.docs_pushed == again.statistics.docs_pulled == 0
    assert status.progress.total == 0  # resumed from the checkpoint: nothing re-sent


async def test_updates_deletions_and_history(make_db: Any, make_peer: Any) -> None:
    client, server = make_db("client"), make_db("server")
    coll = client.default_collection()
    fill(coll, 10)
    peer = await make_peer(server)
    await replicate(peer.url, [coll], PUSH)
    for i in range(3):
        doc = coll.get_document(f"doc-{i:05d}").to_mutable()  # type: ignore[union-attr]
        doc["edited"] = True
        coll.save(doc)
    coll.delete("doc-00005")
    _, status = await replicate(peer.url, [coll], PUSH)
    assert status.error is None and status.progress.total == 4
    assert snapshot(server.default_collection()) == snapshot(coll)
    remote = server.default_collection().get_document("doc-00001")
    assert remote is not None and remote["edited"] is True and remote.generation == 2
    assert server.default_collection().get_document("doc-00005") is None
    # deletions flow the other way too
    server.default_collection().delete("doc-00007")
    _, status = await replicate(peer.url, [coll], PULL)
    assert coll.get_document("doc-00007") is None
    tomb = coll.get_document("doc-00007", include_deleted=True)
    assert tomb is not None and tomb.deleted


async def test_purged_document_is_not_pulled_again(make_db: Any, make_peer: Any) -> None:
    client, server = make_db("client"), make_db("server")
    fill(server.default_collection(), 5)
    peer = await make_peer(server)
    await replicate(peer.url, [client.default_collection()], PULL)
    client.default_collection().purge("doc-00002")
    _, status = await replicate(peer.url, [client.default_collection()], PULL)
    assert status.error is None
    assert client.default_collection().get_document("doc-00002") is None
    # a reset checkpoint pulls everything again, the purged document included
    config_run, status = await replicate(peer.url, [client.default_collection()], PULL)
    config_run.start(reset_checkpoint=True)
    await config_run.wait_stopped(30)
    assert client.default_collection().get_document("doc-00002") is not None


async def test_blobs_both_ways_including_20_mb(make_db: Any, make_peer: Any) -> None:
    client, server = make_db("client"), make_db("server")
    big = bytes(range(256)) * (20 * 1024 * 1024 // 256)
    small = b"small blob content"
    doc = MutableDocument(
        "with-blobs",
        {"big": Blob("application/octet-stream", big), "small": Blob("text/plain", small)},
    )
    client.default_collection().save(doc)
    server.default_collection().save(
        MutableDocument("server-blob", {"att": Blob("text/plain", b"from the server")})
    )
    peer = await make_peer(server)
    replicator, status = await replicate(peer.url, [client.default_collection()])
    assert status.error is None
    got = server.default_collection().get_document("with-blobs")
    assert got is not None
    big_blob = got.get_blob("big")
    assert big_blob is not None and big_blob.length == len(big)
    assert server.blob_store.read(big_blob.digest or "") == big
    assert got.get_blob("small").content == small  # type: ignore[union-attr]
    pulled = client.default_collection().get_document("server-blob")
    assert pulled is not None and pulled.get_blob("att").content == b"from the server"  # type: ignore[union-attr]
    assert replicator.statistics.bytes_pushed >= len(big)


async def test_delta_sync(make_db: Any, make_peer: Any) -> None:
    client, server = make_db("client"), make_db("server")
    coll = client.default_collection()
    items = {str(i): {"name": f"item {i}", "qty": i} for i in range(60)}
    coll.save(MutableDocument("big", {"items": items, "n": 1}))
    peer = await make_peer(server, delta_sync=True)
    await replicate(peer.url, [coll], PUSH, enable_delta_sync=True)
    doc = coll.get_document("big").to_mutable()  # type: ignore[union-attr]
    doc["n"] = 2
    doc["items"]["7"]["name"] = "seven"
    coll.save(doc)
    pusher, status = await replicate(peer.url, [coll], PUSH, enable_delta_sync=True)
    assert status.error is None
    assert pusher.statistics.deltas_sent == 1 and pusher.statistics.delta_bytes_saved > 1000
    assert server.default_collection().get_document("big").properties == doc.properties  # type: ignore[union-attr]
    # and a delta pulled back
    sdoc = server.default_collection().get_document("big").to_mutable()  # type: ignore[union-attr]
    sdoc["items"]["20"]["qty"] = 9999
    server.default_collection().save(sdoc)
    puller, status = await replicate(peer.url, [coll], PULL, enable_delta_sync=True)
    assert status.error is None and puller.statistics.deltas_received == 1
    assert coll.get_document("big").properties == sdoc.properties  # type: ignore[union-attr]


@pytest.mark.parametrize("delta_sync", [True, False])
async def test_what_a_passive_peer_sent_is_recorded_only_as_delta_sources(
    make_db: Any, make_peer: Any, delta_sync: bool
) -> None:
    """With delta sync, the revision a client pulled keeps its body on the passive side, so
    a delta reaches the client across several edits; without, nothing is written for it
    (the client's checkpoint already says what it was sent)."""
    client, server = make_db("client"), make_db("server")
    scoll, coll = server.default_collection(), client.default_collection()
    items = {str(i): {"name": f"item {i}", "qty": i} for i in range(60)}
    scoll.save(MutableDocument("big", {"items": items, "n": 1}))
    peer = await make_peer(server, delta_sync=delta_sync)
    _, status = await replicate(peer.url, [coll], PULL, enable_delta_sync=delta_sync)
    assert status.error is None and coll.count == 1
    await peer.sessions[0].flush_marks()  # what it records, it writes in batches
    assert (scoll._row("big").tree is not None) is delta_sync  # type: ignore[union-attr]
    for n in (2, 3):  # two edits: the client's revision is no longer the current's parent
        doc = scoll.get_document("big").to_mutable()  # type: ignore[union-attr]
        doc["n"] = n
        scoll.save(doc)
    puller, status = await replicate(peer.url, [coll], PULL, enable_delta_sync=delta_sync)
    assert status.error is None
    assert puller.statistics.deltas_received == (1 if delta_sync else 0)
    assert coll.get_document("big").properties == doc.properties  # type: ignore[union-attr]


async def test_no_deltas_unless_both_sides_enable_them(make_db: Any, make_peer: Any) -> None:
    client, server = make_db("client"), make_db("server")
    coll = client.default_collection()
    coll.save(MutableDocument("big", {"text": "x" * 2000, "n": 1}))
    peer = await make_peer(server, delta_sync=False)
    await replicate(peer.url, [coll], PUSH, enable_delta_sync=True)
    doc = coll.get_document("big").to_mutable()  # type: ignore[union-attr]
    doc["n"] = 2
    coll.save(doc)
    pusher, _ = await replicate(peer.url, [coll], PUSH, enable_delta_sync=True)
    assert pusher.statistics.deltas_sent == 0
    assert server.default_collection().get_document("big")["n"] == 2  # type: ignore[index]


async def test_filters_and_document_ids(make_db: Any, make_peer: Any) -> None:
    client, server = make_db("client"), make_db("server")
    coll = client.default_collection()
    fill(coll, 10)
    fill(server.default_collection(), 10, "srv")
    peer = await make_peer(server)

    def even_only(doc: Document, flags: DocumentFlags) -> bool:
        return bool(doc["n"] % 2 == 0)

    async def pull_small(doc: Document, flags: DocumentFlags) -> bool:
        return bool(doc["n"] < 3)

    cfg = CollectionConfiguration(push_filter=even_only, pull_filter=pull_small)
    _, status = await replicate(peer.url, {coll: cfg})
    assert status.error is None
    pushed = {d for d in server.default_collection().document_ids() if d.startswith("doc")}
    assert pushed == {f"doc-{i:05d}" for i in range(0, 10, 2)}
    pulled = {d for d in coll.document_ids() if d.startswith("srv")}
    assert pulled == {"srv-00000", "srv-00001", "srv-00002"}
    assert status.progress.completed == status.progress.total

    other, other_server = make_db("other"), make_db("other-server")
    fill(other.default_collection(), 5, "o")
    fill(other_server.default_collection(), 5, "p")
    peer2 = await make_peer(other_server)
    ids = CollectionConfiguration(document_ids=["o-00001", "p-00003"])
    _, status = await replicate(peer2.url, {other.default_collection(): ids})
    assert status.error is None
    assert [d for d in other_server.default_collection().document_ids() if d.startswith("o")] == [
        "o-00001"
    ]
    assert [d for d in other.default_collection().document_ids() if d.startswith("p")] == [
        "p-00003"
    ]


async def test_several_named_collections(make_db: Any, make_peer: Any) -> None:
    client, server = make_db("client"), make_db("server")
    c_items = client.create_collection("items", "inv")
    c_orders = client.create_collection("orders", "inv")
    s_items = server.create_collection("items", "inv")
    s_orders = server.create_collection("orders", "inv")
    fill(c_items, 5, "ci")
    fill(s_orders, 7, "so")
    peer = await make_peer(server, [s_items, s_orders])
    _replicator, status = await replicate(peer.url, [c_items, c_orders])
    assert status.error is None
    assert snapshot(s_items) == snapshot(c_items) and len(snapshot(s_items)) == 5
    assert snapshot(c_orders) == snapshot(s_orders) and len(snapshot(c_orders)) == 7
    assert server.default_collection().count == 0  # nothing leaked into _default
    assert peer.sessions[0].mode.name == "COLLECTIONS"


async def test_missing_remote_collection_is_a_clear_error(make_db: Any, make_peer: Any) -> None:
    client, server = make_db("client"), make_db("server")
    c_items = client.create_collection("items", "inv")
    peer = await make_peer(server, [server.create_collection("other", "inv")])
    _, status = await replicate(peer.url, [c_items])
    assert status.error is not None and "inv.items" in str(status.error)
    assert status.activity is ActivityLevel.STOPPED


async def test_legacy_mode_for_the_default_collection(make_db: Any, make_peer: Any) -> None:
    client, server = make_db("client"), make_db("server")
    fill(client.default_collection(), 3)
    peer = await make_peer(server)
    _, status = await replicate(peer.url, [client.default_collection()], PUSH)
    assert status.error is None and peer.sessions[0].mode.name == "LEGACY"
    assert server.default_collection().count == 3


async def test_resume_after_restart_resends_nothing_acknowledged(
    make_db: Any, make_peer: Any
) -> None:
    client, server = make_db("client"), make_db("server")
    coll = client.default_collection()
    fill(coll, 50)
    peer = await make_peer(server)
    await replicate(peer.url, [coll], PUSH)
    fill(coll, 20, "more")
    again, status = await replicate(peer.url, [coll], PUSH)
    assert status.error is None and again.statistics.docs_pushed == 20
    assert status.progress.total == 20
    assert await again.pending_document_ids() == set()
    coll.save(MutableDocument("pending-one", {}))
    assert await again.pending_document_ids() == {"pending-one"}
    assert await again.is_document_pending("pending-one")


async def test_conflict_default_resolver_local_wins_on_top_of_remote(
    make_db: Any, make_peer: Any
) -> None:
    client, server = make_db("client"), make_db("server")
    coll, scoll = client.default_collection(), server.default_collection()
    scoll.save(MutableDocument("c", {"v": "base"}))
    peer = await make_peer(server)
    await replicate(peer.url, [coll], PULL)
    local = coll.get_document("c").to_mutable()  # type: ignore[union-attr]
    local["v"] = "local-1"
    coll.save(local)
    local["v"] = "local-2"  # generation 3 beats the remote's 2
    coll.save(local)
    remote = scoll.get_document("c").to_mutable()  # type: ignore[union-attr]
    remote["v"] = "remote"
    scoll.save(remote)
    replicator, status = await replicate(peer.url, [coll])
    assert status.error is None
    assert replicator.statistics.conflicts_resolved == 1
    mine, theirs = coll.get_document("c"), scoll.get_document("c")
    assert mine is not None and theirs is not None
    assert mine["v"] == theirs["v"] == "local-2"
    assert mine.rev_id == theirs.rev_id and mine.generation == 3  # on top of remote's 2
    assert mine.conflicts == () and theirs.conflicts == ()


async def test_conflict_deletion_wins_and_custom_resolver(make_db: Any, make_peer: Any) -> None:
    client, server = make_db("client"), make_db("server")
    coll, scoll = client.default_collection(), server.default_collection()
    scoll.save(MutableDocument("del", {"v": 0}))
    scoll.save(MutableDocument("merge", {"tags": ["a"]}))
    peer = await make_peer(server)
    await replicate(peer.url, [coll], PULL)
    mine = coll.get_document("del").to_mutable()  # type: ignore[union-attr]
    mine["v"] = 1
    coll.save(mine)
    scoll.delete("del")
    m_local = coll.get_document("merge").to_mutable()  # type: ignore[union-attr]
    m_local["tags"] = ["a", "local"]
    coll.save(m_local)
    m_remote = scoll.get_document("merge").to_mutable()  # type: ignore[union-attr]
    m_remote["tags"] = ["a", "remote"]
    scoll.save(m_remote)
    seen: list[Conflict] = []

    async def merge(conflict: Conflict) -> Document | None:
        seen.append(conflict)
        if conflict.document_id == "del":
            return None
        assert conflict.local_document is not None and conflict.remote_document is not None
        tags = sorted(set(conflict.local_document["tags"]) | set(conflict.remote_document["tags"]))
        return MutableDocument(conflict.document_id, {"tags": tags})

    cfg = CollectionConfiguration(conflict_resolver=merge)
    _, status = await replicate(peer.url, {coll: cfg})
    assert status.error is None
    assert sorted(c.document_id for c in seen) == ["del", "merge"]
    assert coll.get_document("del") is None and scoll.get_document("del") is None
    merged = scoll.get_document("merge")
    assert merged is not None and merged["tags"] == ["a", "local", "remote"]  # pushed back
    assert snapshot(coll) == snapshot(scoll)


async def test_push_to_conflict_free_peer_reports_conflicts(make_db: Any, make_peer: Any) -> None:
    client, server = make_db("client"), make_db("server")
    coll, scoll = client.default_collection(), server.default_collection()
    scoll.save(MutableDocument("x", {"v": "server"}))
    coll.save(MutableDocument("x", {"v": "client"}))
    coll.save(MutableDocument("y", {"v": "only on the client"}))
    peer = await make_peer(server, conflict_free=True)
    events: list[DocumentReplication] = []
    from engine.replication import Replicator, ReplicatorConfiguration, URLEndpoint

    replicator = Replicator(
        ReplicatorConfiguration(URLEndpoint(peer.url), [coll], replicator_type=PUSH)
    )
    replicator.add_document_replication_listener(events.append)
    replicator.start()
    status = await replicator.wait_stopped(30)
    assert status.error is None
    docs = {d.id: d for e in events for d in e.documents}
    assert set(docs) == {"x", "y"} and docs["y"].error is None
    assert docs["x"].error is not None and "conflict" in str(docs["x"].error)
    assert scoll.get_document("x")["v"] == "server"  # type: ignore[index]
    assert scoll.get_document("x").conflicts == ()  # type: ignore[union-attr]
    assert scoll.get_document("y") is not None
    assert replicator.status.progress.completed == replicator.status.progress.total == 2


async def test_push_conflict_to_peerbase_peer_is_kept_as_a_branch(
    make_db: Any, make_peer: Any
) -> None:
    client, server = make_db("client"), make_db("server")
    coll, scoll = client.default_collection(), server.default_collection()
    scoll.save(MutableDocument("x", {"v": "server"}))
    coll.save(MutableDocument("x", {"v": "client"}))
    peer = await make_peer(server)
    _, status = await replicate(peer.url, [coll], PUSH)
    assert status.error is None
    doc = scoll.get_document("x")
    assert doc is not None and len(doc.conflicts) == 1  # both edits kept
    bodies = {scoll.read_revision("x", r).body for r in (doc.rev_id, *doc.conflicts)}  # type: ignore[union-attr]
    assert bodies == {b'{"v":"server"}', b'{"v":"client"}'}


async def test_passive_keeps_conflicts_it_receives_through_changes(
    make_db: Any, make_peer: Any
) -> None:
    from engine import blip

    server = make_db("server")
    scoll = server.default_collection()
    scoll.insert_revision("d", "2-aaaa", ["1-base"], {"v": "server"})
    peer = await make_peer(server)
    conn = await blip.connect(peer.url + "/_blipsync")
    try:
        reply = await conn.send_request("changes", {}, b'[[7, "d", "2-bbbb", 0, 10]]')
        assert reply is not None and reply.json() == [["1-base"]]
        await conn.send_request(
            "rev",
            {"id": "d", "rev": "2-bbbb", "history": "1-base", "sequence": "7"},
            b'{"v": "client"}',
        )
    finally:
        await conn.close()
    doc = scoll.get_document("d")
    assert doc is not None and doc.conflicts == ("2-aaaa",) and doc.rev_id == "2-bbbb"
    assert scoll.read_revision("d", "2-aaaa").body == b'{"v":"server"}'  # type: ignore[union-attr]


async def test_continuous_with_live_edits(make_db: Any, make_peer: Any) -> None:
    from engine.replication import Replicator, ReplicatorConfiguration, URLEndpoint

    client, server = make_db("client"), make_db("server")
    coll, scoll = client.default_collection(), server.default_collection()
    peer = await make_peer(server)
    statuses: list[ReplicatorStatus] = []
    replicator = Replicator(ReplicatorConfiguration(URLEndpoint(peer.url), [coll], continuous=True))
    replicator.add_change_listener(statuses.append)
    replicator.start()

    async def until(predicate: Any) -> None:
        for _ in range(500):
            if predicate():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("condition not reached in 5 s")

    await until(lambda: replicator.status.activity is ActivityLevel.IDLE)
    coll.save(MutableDocument("from-client", {"v": 1}))
    await until(lambda: scoll.get_document("from-client") is not None)
    scoll.save(MutableDocument("from-server", {"v": 2}))
    await until(lambda: coll.get_document("from-server") is not None)
    coll.delete("from-client")
    await until(lambda: scoll.get_document("from-client") is None)
    await until(lambda: replicator.status.activity is ActivityLevel.IDLE)
    replicator.stop()
    status = await replicator.wait_stopped(10)
    assert status.activity is ActivityLevel.STOPPED and status.error is None
    levels = [s.activity for s in statuses]
    assert levels[0] is ActivityLevel.CONNECTING and ActivityLevel.BUSY in levels
    assert levels[-1] is ActivityLevel.STOPPED
    assert all(s.progress.completed <= s.progress.total for s in statuses)


async def test_unreachable_peer_retries_then_gives_up(make_db: Any) -> None:
    client = make_db("client")
    statuses: list[ReplicatorStatus] = []
    from engine.replication import Replicator, ReplicatorConfiguration, URLEndpoint

    replicator = Replicator(
        ReplicatorConfiguration(
            URLEndpoint("ws://127.0.0.1:9/db"),
            [client.default_collection()],
            max_attempts=2,
            max_attempt_wait_time=0.05,
        )
    )
    replicator.add_change_listener(statuses.append)
    replicator.start()
    status = await replicator.wait_stopped(10)
    assert status.activity is ActivityLevel.STOPPED
    assert status.error is not None and status.error.transient  # type: ignore[attr-defined]
    assert [s.activity for s in statuses].count(ActivityLevel.OFFLINE) == 1
    assert [s.activity for s in statuses].count(ActivityLevel.CONNECTING) == 2


@pytest.mark.parametrize("bad", ["http://x/db", "ws://host", "ws:///db"])
def test_bad_endpoints(bad: str) -> None:
    from engine.replication import URLEndpoint

    with pytest.raises(ValueError):
        URLEndpoint(bad)


async def test_large_feed_holds_a_bounded_number_of_bodies(
    make_db: Any, make_peer: Any, rev_batches: bool
) -> None:
    from engine.replication import Replicator, ReplicatorConfiguration, URLEndpoint
    from engine.replication.sender import (
        MAX_BATCHES_IN_FLIGHT,
        MAX_CHANGES_IN_FLIGHT,
        MAX_REVS_IN_FLIGHT,
        REV_BATCH,
    )

    client, server = make_db("client"), make_db("server")
    coll = client.default_collection()
    with client.in_batch():
        for i in range(10_000):
            coll.save(MutableDocument(f"d{i:05d}", {"n": i, "pad": "x" * 200}))
    peer = await make_peer(server, rev_batches=rev_batches)
    replicator = Replicator(ReplicatorConfiguration(URLEndpoint(peer.url), [coll],
                                                    replicator_type=PUSH))
    replicator.start()
    await asyncio.sleep(0)
    sender_seen: list[Any] = []

    def grab(status: ReplicatorStatus) -> None:
        session = replicator._session
        if session is not None and not sender_seen and session.contexts[0] is not None:
            sender_seen.append(session.contexts[0].sender)

    replicator.add_change_listener(grab)
    status = await replicator.wait_stopped(120)
    assert status.error is None and status.progress.completed == 10_000
    assert server.default_collection().count == 10_000
    sender = sender_seen[0]
    in_flight = MAX_BATCHES_IN_FLIGHT * REV_BATCH if rev_batches else MAX_REVS_IN_FLIGHT
    # Changes batches being read, plus revisions sent and unanswered: a constant, well
    # below the feed's 10,000 (2,800 with batches, 1,056 without).
    bound = MAX_CHANGES_IN_FLIGHT * sender.batch_size + in_flight
    assert 0 < sender.max_bodies_held <= bound < 10_000 // 2
    assert sender.session.peer_rev_batches is rev_batches
    receiver = peer.sessions[0].contexts[0].receiver
    assert 0 < receiver.inserter.max_queued <= in_flight


async def test_delta_base_missing_on_the_peer_falls_back_to_the_full_body(
        make_db: Any, make_peer: Any) -> None:
    client, server = make_db("client"), make_db("server")
    coll = client.default_collection()
    coll.save(MutableDocument("big", {"text": "y" * 3000, "n": 1}))
    # proposeChanges names the base the pusher believes the peer has (a remote mark);
    # with `changes` the peer itself lists the bases it holds.
    peer = await make_peer(server, delta_sync=True, conflict_free=True)
    await replicate(peer.url, [coll], PUSH, enable_delta_sync=True)
    server.default_collection().purge("big")  # the peer loses the delta's base
    doc = coll.get_document("big").to_mutable()  # type: ignore[union-attr]
    doc["n"] = 2
    coll.save(doc)
    pusher, status = await replicate(peer.url, [coll], PUSH, enable_delta_sync=True)
    assert status.error is None and status.progress.completed == status.progress.total == 1
    assert pusher.statistics.deltas_sent == 1  # tried, refused (404), then sent in full
    got = server.default_collection().get_document("big")
    assert got is not None and got.properties == doc.properties and got.rev_id == doc.rev_id


async def test_conflict_received_while_passive_is_resolved_by_a_later_pull(
        make_db: Any, make_peer: Any) -> None:
    a, b = make_db("a"), make_db("b")
    a_coll, b_coll = a.default_collection(), b.default_collection()
    a_coll.save(MutableDocument("x", {"v": "a1"}))
    doc = a_coll.get_document("x").to_mutable()  # type: ignore[union-attr]
    doc["v"] = "a2"
    a_coll.save(doc)  # generation 2: wins by the default rule
    b_coll.save(MutableDocument("x", {"v": "b1"}))
    peer_a = await make_peer(a)
    await replicate(peer_a.url, [b_coll], PUSH)  # b pushes into a: a keeps both branches
    assert a_coll.conflicted_ids() == ["x"]
    assert len(a_coll.open_leaves("x")) == 2
    peer_b = await make_peer(b)
    replicator, status = await replicate(peer_b.url, [a_coll])  # a is active now
    assert status.error is None and replicator.statistics.conflicts_resolved >= 1
    assert a_coll.conflicted_ids() == [] and b_coll.conflicted_ids() == []
    assert a_coll.get_document("x")["v"] == b_coll.get_document("x")["v"] == "a2"  # type: ignore[index]
    assert snapshot(a_coll) == snapshot(b_coll)
