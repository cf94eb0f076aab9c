from __future__ import annotations

import asyncio
import subprocess
import sys
import threading

import pytest

from engine.store import (
    Collection,
    CollectionChange,
    Database,
    DocumentChange,
    MutableDocument,
)


def test_sync_listener_after_commit(coll: Collection, db: Database) -> None:
    events: list[CollectionChange] = []
    token = coll.add_change_listener(events.append)
    coll.save(MutableDocument("a", {}))
    assert [e.document_ids for e in events] == [("a",)]
    with db.in_batch():
        coll.save(MutableDocument("b", {}))
        coll.save(MutableDocument("c", {}))
        assert len(events) == 1  # nothing before the commit
    assert [e.document_ids for e in events] == [("a",), ("b", "c")]
    token.remove()
    coll.save(MutableDocument("d", {}))
    assert len(events) == 2


def test_no_notification_after_rollback(coll: Collection, db: Database) -> None:
    events: list[CollectionChange] = []
    coll.add_change_listener(events.append)
    with pytest.raises(ValueError), db.in_batch():
        coll.save(MutableDocument("a", {}))
        raise ValueError("abort")
    assert events == []


def test_document_listener(coll: Collection) -> None:
    seen: list[DocumentChange] = []
    coll.add_document_change_listener("watched", seen.append)
    coll.save(MutableDocument("other", {}))
    coll.save(MutableDocument("watched", {}))
    coll.purge("watched")
    assert [e.document_id for e in seen] == ["watched", "watched"]


def test_failing_listener_does_not_break_saves(coll: Collection) -> None:
    def boom(event: object) -> None:
        raise RuntimeError("listener bug")

    coll.add_change_listener(boom)
    coll.save(MutableDocument("a", {}))
    assert coll.get_document("a") is not None


async def test_async_listener_runs_on_loop(coll: Collection, db: Database) -> None:
    got: asyncio.Queue[tuple[str, ...]] = asyncio.Queue()
    loop_thread = threading.get_ident()
    threads: list[int] = []

    async def listener(change: CollectionChange) -> None:
        threads.append(threading.get_ident())
        await got.put(change.document_ids)

    coll.add_change_listener(listener)
    await db.run(coll.save, MutableDocument("x", {"v": 1}))
    assert await asyncio.wait_for(got.get(), 5) == ("x",)
    assert threads == [loop_thread]


def test_async_listener_needs_a_loop(coll: Collection) -> None:
    async def listener(change: CollectionChange) -> None:
        pass

    with pytest.raises(TypeError):
        coll.add_change_listener(listener)


async def test_other_process_commits_reach_listeners(coll: Collection, db: Database) -> None:
    got: asyncio.Queue[tuple[str, ...]] = asyncio.Queue()
    coll.add_change_listener(lambda change: got.put_nowait(change.document_ids))
    coll.save(MutableDocument("mine", {}))
    assert await asyncio.wait_for(got.get(), 5) == ("mine",)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "engine.cli.main",
        "doc",
        "put",
        "theirs",
        '{"by": "cli"}',
        "--db",
        str(db.path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _out, err = await proc.communicate()
    assert proc.returncode == 0, err
    assert await asyncio.wait_for(got.get(), 5) == ("theirs",)
    assert got.empty()
    # Our own next write must not re-announce the other process's change.
    coll.save(MutableDocument("mine2", {}))
    assert await asyncio.wait_for(got.get(), 5) == ("mine2",)
