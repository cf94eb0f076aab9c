"""The `revs` extension: its codec, who gets it, and per-revision errors inside a batch."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine import blip
from engine.blip import BlipError
from engine.replication import (
    SERVER_HEADER,
    SessionOptions,
    peer_accepts_branches,
    peer_takes_rev_batches,
    server_header,
)
from engine.replication.errors import ProtocolError
from engine.replication.revbatch import (
    BatchEntry,
    decode_batch,
    decode_batch_reply,
    encode_batch,
    encode_batch_reply,
)
from engine.store import MutableDocument
from engine.store.revid import canonical_json

from .conftest import replicate

REV_A = "1-" + "a" * 40
REV_B = "2-" + "b" * 40


# -- codec ------------------------------------------------------------------------------------

_ids = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20)
_revs = st.builds(
    lambda g, h: f"{g}-{h}",
    st.integers(1, 999),
    st.text("0123456789abcdef", min_size=8, max_size=40),
)
_bodies = st.dictionaries(
    st.text(max_size=8),
    st.one_of(st.integers(-(2**62), 2**62), st.text(max_size=20), st.booleans(), st.none()),
    max_size=5,
)


@given(
    st.lists(
        st.tuples(
            _ids,
            _revs,
            st.lists(_revs, max_size=4),
            st.integers(1, 2**40),
            st.booleans(),
            st.booleans(),
            _bodies,
        ),
        max_size=20,
    )
)
def test_batch_round_trip(items: list[tuple[Any, ...]]) -> None:
    entries = [
        BatchEntry(doc_id, rev, history, seq, deleted, no_conflicts, canonical_json(body))
        for doc_id, rev, history, seq, deleted, no_conflicts, body in items
    ]
    decoded = decode_batch(encode_batch(entries))
    assert len(decoded) == len(entries)
    for (msg, body), entry, item in zip(decoded, entries, items, strict=True):
        assert (msg.doc_id, msg.rev_id, list(msg.history)) == (
            entry.doc_id,
            entry.rev_id,
            list(entry.history),
        )
        assert (msg.sequence, msg.deleted, msg.no_conflicts) == (
            str(entry.sequence),
            entry.deleted,
            entry.no_conflicts,
        )
        assert body == item[6]


def test_stored_bodies_are_embedded_as_they_are() -> None:
    raw = b'{"b":1,"a":[1,2]}'
    encoded = encode_batch([BatchEntry("d", REV_A, [], 7, False, False, raw)])
    assert encoded == b'[["d","' + REV_A.encode() + b'",[],7,0,' + raw + b"]]"
    deleted = encode_batch([BatchEntry("d", REV_B, [REV_A], 8, True, True, b"")])
    assert orjson.loads(deleted) == [["d", REV_B, [REV_A], 8, 3, {}]]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"{}",
        b"[[1]]",
        b'[["", "' + REV_A.encode() + b'", [], 1, 0, {}]]',
        b'[["d", "bogus", [], 1, 0, {}]]',
        b'[["d", "' + REV_A.encode() + b'", ["bogus"], 1, 0, {}]]',
        b'[["d", "' + REV_A.encode() + b'", "x", 1, 0, {}]]',
        b'[["d", "' + REV_A.encode() + b'", [], 1, 0, [1]]]',
        b'[["d", "' + REV_A.encode() + b'", [], 1, "0", {}]]',
        b'[["d", "' + REV_A.encode() + b'", [], null, 0, {}]]',
    ],
)
def test_malformed_batches_are_refused_whole(body: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_batch(body)


def test_reply_statuses() -> None:
    body = encode_batch_reply([0, (409, "conflict"), 0])
    assert decode_batch_reply(body, 3) == [0, (409, "conflict"), 0]
    for bad, count in [(b"[0]", 2), (b"[true]", 1), (b"[[409]]", 1), (b"{}", 0), (b"x", 1)]:
        with pytest.raises(ProtocolError):
            decode_batch_reply(bad, count)


def test_server_header_announces_the_extensions() -> None:
    assert peer_takes_rev_batches(SERVER_HEADER) and peer_accepts_branches(SERVER_HEADER)
    plain = server_header(SessionOptions(rev_batches=False))
    assert peer_accepts_branches(plain) and not peer_takes_rev_batches(plain)
    for other in [None, "", "CouchbaseLite/3.2.4", "Peerbase/0.1 (rev-batchesX)"]:
        assert not peer_takes_rev_batches(other)


# -- over the wire ----------------------------------------------------------------------------


async def _client(peer: Any) -> blip.BlipConnection:
    return await blip.connect(peer.url + "/_blipsync")


def _batch(*entries: tuple[str, str, list[str], bool, dict[str, Any]]) -> bytes:
    return encode_batch(
        [
            BatchEntry(doc_id, rev, history, i + 1, False, no_conflicts, canonical_json(body))
            for i, (doc_id, rev, history, no_conflicts, body) in enumerate(entries)
        ]
    )


async def test_one_bad_revision_does_not_fail_the_others(make_db: Any, make_peer: Any) -> None:
    server = make_db("server")
    coll = server.default_collection()
    coll.save(MutableDocument("taken", {"v": "theirs"}))
    existing = coll.get_document("taken")
    assert existing is not None
    peer = await make_peer(server)
    conn = await _client(peer)
    try:
        reply = await conn.send_request(
            "revs",
            None,
            _batch(
                ("new-1", REV_A, [], False, {"n": 1}),
                ("taken", REV_A, [], True, {"v": "mine"}),  # noconflicts: refused with 409
                ("new-2", REV_A, [], False, {"n": 2}),
            ),
        )
    finally:
        await conn.close()
    assert reply is not None
    statuses = decode_batch_reply(reply.body, 3)
    assert statuses[0] == 0 and statuses[2] == 0
    assert isinstance(statuses[1], tuple) and statuses[1][0] == 409
    assert coll.get_document("new-1").properties == {"n": 1}
    assert coll.get_document("new-2").properties == {"n": 2}
    assert coll.get_document("taken").rev_id == existing.rev_id  # untouched


async def test_malformed_batch_stores_nothing_and_the_connection_lives(
    make_db: Any, make_peer: Any
) -> None:
    server = make_db("server")
    peer = await make_peer(server)
    conn = await _client(peer)
    try:
        body = _batch(("fine", REV_A, [], False, {"n": 1}))[:-1] + b',["bad"]]'
        with pytest.raises(BlipError) as info:
            await conn.send_request("revs", None, body)
        assert info.value.code == 400
        reply = await conn.send_request("revs", None, _batch(("later", REV_A, [], False, {})))
        assert reply is not None and decode_batch_reply(reply.body, 1) == [0]
    finally:
        await conn.close()
    coll = server.default_collection()
    assert coll.get_document("fine") is None and coll.get_document("later") is not None


async def test_read_only_peer_refuses_batches(make_db: Any, make_peer: Any) -> None:
    server = make_db("server")
    peer = await make_peer(server, read_only=True)
    conn = await _client(peer)
    try:
        with pytest.raises(BlipError) as info:
            await conn.send_request("revs", None, _batch(("d", REV_A, [], False, {})))
        assert info.value.code == 403
    finally:
        await conn.close()
    assert server.default_collection().count == 0


@pytest.mark.parametrize("ask", [False, True])
async def test_passive_sends_batches_only_to_clients_that_ask(
    make_db: Any, make_peer: Any, ask: bool
) -> None:
    server = make_db("server")
    coll = server.default_collection()
    with server.in_batch():
        for i in range(5):
            coll.save(MutableDocument(f"d{i}", {"i": i}))
    peer = await make_peer(server)
    seen: list[str] = []
    done = asyncio.Event()

    async def on_changes(request: blip.IncomingRequest) -> blip.OutgoingReply | None:
        entries = request.json()
        if not entries:
            done.set()
            return None
        return blip.OutgoingReply(body=orjson.dumps([[] for _ in entries]))

    async def on_rev(request: blip.IncomingRequest) -> blip.OutgoingReply | None:
        seen.append("rev")
        return None

    async def on_revs(request: blip.IncomingRequest) -> blip.OutgoingReply | None:
        seen.append("revs")
        return blip.OutgoingReply(body=encode_batch_reply([0] * len(request.json())))

    conn = await _client(peer)
    conn.register_handler("changes", on_changes)
    conn.register_handler("rev", on_rev)
    conn.register_handler("revs", on_revs)
    try:
        await conn.send_request("subChanges", {"revBatches": "true"} if ask else {})
        await asyncio.wait_for(done.wait(), 10)
        for _ in range(500):
            if len(seen) >= (1 if ask else 5):
                break
            await asyncio.sleep(0.01)
    finally:
        await conn.close()
    assert seen == (["revs"] if ask else ["rev"] * 5)


async def test_replicator_uses_batches_only_with_peers_announcing_them(
    make_db: Any, make_peer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.replication.receiver import Receiver

    calls: list[str] = []
    for name in ("on_rev", "on_revs"):
        original = getattr(Receiver, name)

        def spy(self: Any, request: Any, _original: Any = original, _name: str = name) -> Any:
            calls.append(_name)
            return _original(self, request)

        monkeypatch.setattr(Receiver, name, spy)
    for batches in (True, False):
        calls.clear()
        client, server = make_db(f"client-{batches}"), make_db(f"server-{batches}")
        with client.in_batch():
            for i in range(30):
                client.default_collection().save(MutableDocument(f"up{i}", {"i": i}))
        with server.in_batch():
            for i in range(30):
                server.default_collection().save(MutableDocument(f"down{i}", {"i": i}))
        peer = await make_peer(server, rev_batches=batches)
        _, status = await replicate(peer.url, [client.default_collection()])
        assert status.error is None and status.progress.completed == 60
        assert client.default_collection().count == server.default_collection().count == 60
        if batches:
            assert set(calls) == {"on_revs"} and len(calls) <= 4
        else:
            assert calls == ["on_rev"] * 60


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"a":"x@example.org","b":"c:\\\\d"}', False),  # "@" and "\" alone are not enough
        (b'{"f":{"@type":"blob","digest":"sha1-x"}}', True),
        (b'{"_attachments":{}}', True),
        (b'{"f":{"\\u0040type":"blob"}}', True),  # an escaped key gets the full walk
        (b'{"plain":1}', False),
    ],
)
def test_only_bodies_that_may_reference_blobs_are_walked(raw: bytes, expected: bool) -> None:
    from engine.replication.blobs import may_have_blobs

    assert may_have_blobs(raw) is expected
