"""Scenarios 1, 2 and 6, and TLS corruption: replication through a misbehaving proxy."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import pytest

from engine.replication import (
    ActivityLevel,
    Replicator,
    ReplicatorConfiguration,
    URLEndpoint,
)
from engine.store import Collection, MutableDocument

from .proxy import Direction
from .support import (
    HEARTBEAT,
    QUIET_HEARTBEAT,
    Sizes,
    Timeline,
    backoff_problems,
    compare,
    expect_revisions,
    fill,
    schedule,
)


def _continuous(
    url: str, coll: Collection, cap: float, heartbeat: float = QUIET_HEARTBEAT
) -> tuple[Replicator, Timeline]:
    replicator = Replicator(
        ReplicatorConfiguration(
            URLEndpoint(url),
            [coll],
            continuous=True,
            heartbeat=heartbeat,
            max_attempt_wait_time=cap,
        )
    )
    return replicator, Timeline().attach(replicator)


def _report(problems: list[str], timeline: Timeline) -> str:
    return "\n".join(problems) + "\n--- attempts ---\n" + schedule(timeline)


async def test_push_and_pull_survives_random_cuts(
    make_db: Any, make_listener: Any, make_proxy: Any, scale: Sizes, rng: random.Random
) -> None:
    """Scenario 1: 10,000 documents both ways, the connection cut 5 times at random bytes."""
    client, server = make_db("client"), make_db("server")
    half = scale.big_docs // 2
    expected = fill(client.default_collection(), half, "c") | fill(
        server.default_collection(), half, "s"
    )
    listener = await make_listener(server)
    proxy = await make_proxy(listener.port)
    cap = 3.0  # large enough to tell retry 1 (2 s) from retry 2 (3 s)
    replicator = Replicator(
        ReplicatorConfiguration(
            URLEndpoint(proxy.url(server.name)),
            [client.default_collection()],
            heartbeat=QUIET_HEARTBEAT,
            max_attempt_wait_time=cap,
        )
    )
    timeline = Timeline().attach(replicator)
    # ~200 bytes per document each way: cuts land well inside the transfer
    high = max(20_000, scale.big_docs * 200 // (scale.cuts + 1))
    positions: list[int] = []

    async def cutter() -> None:
        for _ in range(scale.cuts):
            n, done = proxy.cut_randomly(rng, 5_000, high)
            positions.append(n)
            await done.wait()

    cuts = asyncio.create_task(cutter())
    replicator.start()
    status = await replicator.wait_stopped(100 if not scale.soak else 1800)
    cuts.cancel()

    problems = compare(client.default_collection(), server.default_collection())
    problems += expect_revisions(client.default_collection(), expected)
    problems += expect_revisions(server.default_collection(), expected)
    if proxy.stats.cuts != scale.cuts:
        problems.append(f"only {proxy.stats.cuts} of {scale.cuts} cuts happened ({positions})")
    offline = timeline.count(ActivityLevel.OFFLINE)
    if offline != proxy.stats.cuts:
        problems.append(f"{proxy.stats.cuts} cuts but {offline} times OFFLINE")
    problems += backoff_problems(timeline, cap)
    if status.activity is not ActivityLevel.STOPPED or status.error is not None:
        problems.append(f"the replication finished with {status.activity.name}, {status.error!r}")
    if status.progress.completed != status.progress.total:
        problems.append(f"final progress {status.progress}")
    assert not problems, _report(problems, timeline)


async def _edit(
    coll: Collection, prefix: str, shared: list[str], seconds: float, rng: random.Random
) -> dict[str, dict[str, Any] | None]:
    """Create, update and delete documents for `seconds`; returns the last write per own id."""
    last: dict[str, dict[str, Any] | None] = {}
    own: list[str] = []
    deadline = time.monotonic() + seconds
    step = 0
    while time.monotonic() < deadline:
        step += 1
        roll = rng.random()
        if roll < 0.5 or not own:
            doc_id = f"{prefix}-{step:06d}"
            body: dict[str, Any] = {"by": prefix, "step": step, "v": 1}
            coll.save(MutableDocument(doc_id, body))
            own.append(doc_id)
            last[doc_id] = body
        elif roll < 0.85:
            doc_id = rng.choice(own)
            doc = coll.get_document(doc_id)
            if doc is not None:
                body = {**doc.properties, "step": step, "v": doc.properties["v"] + 1}
                coll.save(MutableDocument(doc_id, body))
                last[doc_id] = body
        elif roll < 0.95:
            doc_id = rng.choice(own)
            if coll.get_document(doc_id) is not None:
                coll.delete(doc_id)
                last[doc_id] = None
        else:  # both sides edit these: conflicts the replicator must resolve
            doc_id = rng.choice(shared)
            coll.save(MutableDocument(doc_id, {"shared": True, "by": prefix, "step": step}))
        await asyncio.sleep(0.004)
    return last


async def test_continuous_with_edits_on_both_sides_cuts_and_stalls(
    make_db: Any, make_listener: Any, make_proxy: Any, scale: Sizes, rng: random.Random
) -> None:
    """Scenario 2: continuous push-and-pull while both sides edit, through cuts and stalls."""
    client, server = make_db("client"), make_db("server")
    ccoll, scoll = client.default_collection(), server.default_collection()
    base = fill(ccoll, scale.docs // 2, "base-c") | fill(scoll, scale.docs // 2, "base-s")
    shared = [f"shared-{i}" for i in range(5)]
    listener = await make_listener(server)
    proxy = await make_proxy(listener.port)
    cap = 1.0
    replicator, timeline = _continuous(proxy.url(server.name), ccoll, cap)
    replicator.start()
    faults: list[str] = []

    async def injector() -> None:
        for i in range(scale.faults):
            await asyncio.sleep(scale.edit_seconds / (scale.faults + 1))
            if i % 2 == 0:
                n, done = proxy.cut_randomly(rng, 200, 20_000)
                faults.append(f"cut after {n} bytes")
                # quiet moments carry few bytes: give up on this cut after a while
                try:
                    await asyncio.wait_for(done.wait(), scale.edit_seconds / scale.faults)
                except TimeoutError:
                    faults.append("(cut not reached)")
            else:
                seconds = rng.uniform(0.2, 1.0)
                proxy.stall(seconds)
                faults.append(f"stall {seconds:.2f} s")

    edits = await asyncio.gather(
        _edit(ccoll, "c", shared, scale.edit_seconds, rng),
        _edit(scoll, "s", shared, scale.edit_seconds, rng),
        injector(),
    )
    proxy.cancel_cut()  # no fault after the edits: let it converge
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if replicator.status.activity is ActivityLevel.IDLE and not compare(ccoll, scoll):
            break
        await asyncio.sleep(0.1)
    replicator.stop()
    status = await replicator.wait_stopped(20)

    problems = compare(ccoll, scoll)
    for coll in (ccoll, scoll):
        problems += expect_revisions(coll, base)  # untouched base documents
        for last in edits[:2]:
            for doc_id, body in last.items():
                doc = coll.get_document(doc_id, include_deleted=True)
                if doc is None:
                    problems.append(f"{coll.database.name}: {doc_id} lost")
                elif body is None and not doc.deleted:
                    problems.append(f"{coll.database.name}: deletion of {doc_id} lost")
                elif body is not None and doc.properties != body:
                    problems.append(
                        f"{coll.database.name}: {doc_id} is {doc.properties}, last write {body}"
                    )
    if proxy.stats.cuts == 0 or timeline.count(ActivityLevel.OFFLINE) == 0:
        problems.append(f"no fault took effect: {faults}")
    problems += backoff_problems(timeline, cap)
    if status.activity is not ActivityLevel.STOPPED or status.error is not None:
        problems.append(f"stopped with {status.activity.name}, {status.error!r}")
    assert not problems, _report(problems[:20], timeline) + f"\nfaults: {faults}"


async def test_silent_peer_is_detected_by_the_heartbeat(
    make_db: Any, make_listener: Any, make_proxy: Any, scale: Sizes
) -> None:
    """Scenario 6: the peer vanishes without closing; the heartbeat notices, then retries."""
    client, server = make_db("client"), make_db("server")
    ccoll, scoll = client.default_collection(), server.default_collection()
    expected = fill(ccoll, scale.docs // 2, "c") | fill(scoll, scale.docs // 2, "s")
    listener = await make_listener(server)
    proxy = await make_proxy(listener.port)
    cap = 1.0
    replicator, timeline = _continuous(proxy.url(server.name), ccoll, cap, HEARTBEAT)
    replicator.start()
    await timeline.wait_for(
        lambda: replicator.status.activity is ActivityLevel.IDLE, 30, "the first IDLE"
    )
    assert proxy.drop() == 1
    # Detection must take about a heartbeat (a ping, then no pong): a generous bound that
    # still fails if the dead connection hangs on for websockets' 20 s ping timeout.
    bound = 3 * HEARTBEAT + 2.0
    problems: list[str] = []
    try:
        await timeline.wait_for(
            lambda: replicator.status.activity is ActivityLevel.OFFLINE, bound, "OFFLINE"
        )
    except AssertionError:
        problems.append(
            f"the silent peer was not detected within {bound} s (heartbeat {HEARTBEAT} s)"
        )
        proxy.reset_all()  # end the dead connection by force so the rest can be checked
        await timeline.wait_for(
            lambda: replicator.status.activity is ActivityLevel.OFFLINE, 10, "OFFLINE after RST"
        )
    # the retry connects (new connections go through) and replication goes on
    ccoll.save(MutableDocument("after-drop", {"v": 1}))
    saved = ccoll.get_document("after-drop")
    assert saved is not None and saved.rev_id is not None
    expected["after-drop"] = saved.rev_id
    await timeline.wait_for(
        lambda: scoll.get_document("after-drop") is not None, 30, "the push after the retry"
    )
    replicator.stop()
    status = await replicator.wait_stopped(20)
    problems += compare(ccoll, scoll) + expect_revisions(scoll, expected)
    if timeline.count(ActivityLevel.OFFLINE) != 1:
        problems.append(f"OFFLINE {timeline.count(ActivityLevel.OFFLINE)} times, not once")
    problems += backoff_problems(timeline, cap)
    if status.activity is not ActivityLevel.STOPPED or status.error is not None:
        problems.append(f"stopped with {status.activity.name}, {status.error!r}")
    assert not problems, _report(problems, timeline)


@pytest.mark.parametrize("direction", [Direction.UP, Direction.DOWN])
async def test_corrupted_byte_over_tls_fails_the_connection_not_the_data(
    memory_keyring: object,
    make_db: Any,
    make_listener: Any,
    make_proxy: Any,
    scale: Sizes,
    direction: Direction,
) -> None:
    """One flipped bit in a TLS stream: the connection fails (and is retried); no garbage."""
    client, server = make_db("client"), make_db("server")
    ccoll, scoll = client.default_collection(), server.default_collection()
    expected = fill(ccoll, scale.docs // 2, "c", pad=300) | fill(
        scoll, scale.docs // 2, "s", pad=300
    )
    listener = await make_listener(server, disable_tls=False)
    proxy = await make_proxy(listener.port)
    proxy.throttle(150_000)  # so that the corruption lands mid-transfer
    cap = 1.0
    replicator = Replicator(
        ReplicatorConfiguration(
            URLEndpoint(proxy.url(server.name, tls=True)),
            [ccoll],
            accept_only_self_signed_server_certificate=True,
            heartbeat=QUIET_HEARTBEAT,
            max_attempt_wait_time=cap,
        )
    )
    timeline = Timeline().attach(replicator)
    replicator.start()
    await timeline.wait_for(
        lambda: replicator.status.progress.completed >= len(expected) // 10, 30, "10% done"
    )
    proxy.corrupt_next(direction)
    await timeline.wait_for(lambda: proxy.stats.corrupted == 1, 10, "the corruption")
    proxy.throttle(None)
    status = await replicator.wait_stopped(60)

    problems = compare(ccoll, scoll) + expect_revisions(ccoll, expected)
    problems += expect_revisions(scoll, expected)
    attempts = list(timeline.attempts())
    if not attempts or attempts[0].outcome is not ActivityLevel.OFFLINE:
        problems.append("the corrupted connection did not fail with a transient error")
    problems += backoff_problems(timeline, cap)
    if status.activity is not ActivityLevel.STOPPED or status.error is not None:
        problems.append(f"the replication finished {status.activity.name}, {status.error!r}")
    assert not problems, _report(problems, timeline)
