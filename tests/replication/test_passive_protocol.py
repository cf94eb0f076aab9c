"""Our passive peer driven by a raw BLIP client: the protocol's edge rules."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from typing import Any

import orjson
import pytest

from engine import blip
from engine.blip import BlipError
from engine.store import Blob, MutableDocument, digest_of


async def _client(peer: Any) -> blip.BlipConnection:
    return await blip.connect(peer.url + "/_blipsync")


async def test_modes_cannot_be_mixed(make_db: Any, make_peer: Any) -> None:
    server = make_db("server")
    items = server.create_collection("items", "inv")
    peer = await make_peer(server, [server.default_collection(), items])
    conn = await _client(peer)
    try:  # collection-aware: every message must name its collection
        reply = await conn.send_request(
            "getCollections",
            None,
            orjson.dumps({"collections": ["inv.items", "nope.nope"], "checkpoint_ids": ["a", "b"]}),
        )
        assert reply is not None and reply.json() == [{}, None]
        with pytest.raises(BlipError) as info:
            await conn.send_request("getCheckpoint", {"client": "a"})
        assert (info.value.domain, info.value.code) == ("HTTP", 400)
        with pytest.raises(BlipError) as info:
            await conn.send_request("subChanges", {"collection": "1"})
        assert info.value.code == 404  # not served
        with pytest.raises(BlipError) as info:
            await conn.send_request("subChanges", {"collection": "7"})
        assert info.value.code == 400
    finally:
        await conn.close()
    conn = await _client(peer)
    try:  # legacy: getCheckpoint first, then no 'collection' and no getCollections
        with pytest.raises(BlipError) as info:
            await conn.send_request("getCheckpoint", {"client": "x"})
        assert (info.value.domain, info.value.code) == ("HTTP", 404)
        with pytest.raises(BlipError) as info:
            await conn.send_request("changes", {"collection": "0"}, b"[]")
        assert info.value.code == 400
        with pytest.raises(BlipError) as info:
            await conn.send_request(
                "getCollections", None, b'{"collections":[],"checkpoint_ids":[]}'
            )
        assert info.value.code == 400
    finally:
        await conn.close()


async def test_checkpoints_are_mvcc(make_db: Any, make_peer: Any) -> None:
    peer = await make_peer(make_db("server"))
    conn = await _client(peer)
    try:
        with pytest.raises(BlipError) as info:
            await conn.send_request("getCheckpoint", {"client": "cp-1"})
        assert info.value.code == 404
        first = await conn.send_request(
            "setCheckpoint", {"client": "cp-1", "rev": ""}, b'{"local": 5}'
        )
        assert first is not None
        rev = first.properties["rev"]
        got = await conn.send_request("getCheckpoint", {"client": "cp-1"})
        assert got is not None and got.properties["rev"] == rev and got.json() == {"local": 5}
        with pytest.raises(BlipError) as info:  # stale rev
            await conn.send_request("setCheckpoint", {"client": "cp-1", "rev": ""}, b'{"local": 6}')
        assert (info.value.domain, info.value.code) == ("HTTP", 409)
        second = await conn.send_request(
            "setCheckpoint", {"client": "cp-1", "rev": rev}, b'{"local": 7}'
        )
        assert second is not None and second.properties["rev"] != rev
        with pytest.raises(BlipError) as info:
            await conn.send_request("setCheckpoint", {"client": "cp-1", "rev": rev}, b"[1]")
        assert info.value.code == 400
    finally:
        await conn.close()


async def test_version_vectors_refused(make_db: Any, make_peer: Any) -> None:
    peer = await make_peer(make_db("server"))
    conn = await _client(peer)
    try:
        with pytest.raises(BlipError) as info:
            await conn.send_request("subChanges", {"versioning": "version-vectors"})
        assert info.value.code == 501 and "revision trees" in info.value.message
        await conn.wait_closed()  # the spec: respond with an error and close
    finally:
        await conn.close()


async def test_sub_changes_doc_ids_active_only_and_batches(make_db: Any, make_peer: Any) -> None:
    server = make_db("server")
    coll = server.default_collection()
    for i in range(7):
        coll.save(MutableDocument(f"d{i}", {"i": i}))
    coll.delete("d3")
    peer = await make_peer(server)
    received: list[Any] = []
    conn = await _client(peer)

    async def on_changes(request: blip.IncomingRequest) -> blip.OutgoingReply | None:
        received.append(request.json())
        return None if request.no_reply else blip.OutgoingReply(body=b"[]")

    conn.register_handler("changes", on_changes)
    try:
        await conn.send_request(
            "subChanges",
            {"batch": "2", "activeOnly": "true"},
            b'{"docIDs": ["d1", "d2", "d3", "d5", "d6"]}',
        )
        while not received or received[-1] != []:
            await conn_wait(conn)
    finally:
        await conn.close()
    batches = [b for b in received if b]
    assert all(0 < len(b) <= 2 for b in batches)  # `batch` caps each changes message
    assert [e[1] for b in batches for e in b] == ["d1", "d2", "d5", "d6"]
    seq, _doc_id, rev, deleted, size = batches[0][0]
    assert isinstance(seq, int) and rev.startswith("1-") and deleted == 0 and size > 0


async def conn_wait(conn: blip.BlipConnection) -> None:
    await asyncio.sleep(0.01)


async def test_prove_attachment(make_db: Any, make_peer: Any) -> None:
    server = make_db("server")
    data = b"secret blob content"
    server.default_collection().save(MutableDocument("d", {"b": Blob("text/plain", data)}))
    peer = await make_peer(server)
    conn = await _client(peer)
    try:
        nonce = bytes(range(20))
        reply = await conn.send_request("proveAttachment", {"digest": digest_of(data)}, nonce)
        assert reply is not None
        expected = hashlib.sha1(bytes([len(nonce)]) + nonce + data).digest()
        assert reply.body == b"sha1-" + base64.b64encode(expected)
        with pytest.raises(BlipError) as info:
            await conn.send_request("proveAttachment", {"digest": digest_of(b"other")}, nonce)
        assert info.value.code == 404
        got = await conn.send_request("getAttachment", {"digest": digest_of(data)})
        assert got is not None and got.body == data
    finally:
        await conn.close()


async def test_legacy_attachments_are_fetched_before_the_rev_is_acknowledged(
    make_db: Any, make_peer: Any
) -> None:
    server = make_db("server")
    peer = await make_peer(server)
    data = b"legacy attachment bytes" * 100
    digest = digest_of(data)
    asked: list[dict[str, str]] = []
    conn = await _client(peer)

    async def on_get_attachment(request: blip.IncomingRequest) -> blip.OutgoingReply:
        asked.append(dict(request.properties))
        return blip.OutgoingReply(body=data)

    conn.register_handler("getAttachment", on_get_attachment)
    try:
        body = {
            "title": "old style",
            "_attachments": {
                "file.txt": {
                    "digest": digest,
                    "length": len(data),
                    "content_type": "text/plain",
                    "stub": True,
                    "revpos": 1,
                }
            },
        }
        await conn.send_request(
            "rev", {"id": "legacy", "rev": "1-abc", "sequence": "1"}, orjson.dumps(body)
        )
    finally:
        await conn.close()
    assert [a["digest"] for a in asked] == [digest] and asked[0]["compress"] == "true"
    assert server.blob_store.read(digest) == data
    doc = server.default_collection().get_document("legacy")
    assert doc is not None and doc["_attachments"]["file.txt"]["digest"] == digest


async def test_bad_blob_content_is_refused_and_nothing_stored(make_db: Any, make_peer: Any) -> None:
    server = make_db("server")
    peer = await make_peer(server)
    conn = await _client(peer)

    async def wrong_bytes(request: blip.IncomingRequest) -> blip.OutgoingReply:
        return blip.OutgoingReply(body=b"not what the digest says")

    conn.register_handler("getAttachment", wrong_bytes)
    try:
        meta = {"@type": "blob", "digest": digest_of(b"expected"), "length": 8}
        with pytest.raises(BlipError):
            await conn.send_request("rev", {"id": "d", "rev": "1-abc"}, orjson.dumps({"b": meta}))
    finally:
        await conn.close()
    assert server.default_collection().get_document("d") is None
    assert not server.blob_store.has(meta["digest"])


async def test_malformed_messages_get_errors_and_the_connection_lives(
    make_db: Any, make_peer: Any
) -> None:
    server = make_db("server")
    peer = await make_peer(server)
    conn = await _client(peer)
    try:
        for profile, props, body in [
            ("changes", {}, b"{not json"),
            ("changes", {}, b'[["x"]]'),
            ("proposeChanges", {}, b"[[1, 2]]"),
            ("rev", {"id": "d"}, b"{}"),
            ("rev", {"id": "d", "rev": "bad"}, b"{}"),
            ("rev", {"id": "d", "rev": "1-a"}, b"[]"),
            ("rev", {"id": "d", "rev": "2-b", "deltaSrc": "1-zz"}, b"{}"),
        ]:
            with pytest.raises(BlipError) as info:
                await conn.send_request(profile, props, body)
            assert 400 <= info.value.code < 600, (profile, body)
        ok = await conn.send_request("rev", {"id": "d", "rev": "1-a"}, b'{"fine": true}')
        assert ok is not None
    finally:
        await conn.close()
    assert server.default_collection().get_document("d")["fine"] is True  # type: ignore[index]
