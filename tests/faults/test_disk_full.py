"""Scenario 5: the receiving side's disk fills up, then space is freed."""

from __future__ import annotations

from typing import Any

import pytest

from engine.replication import (
    ActivityLevel,
    Replicator,
    ReplicatorConfiguration,
    ReplicatorType,
    URLEndpoint,
)

from .support import (
    QUIET_HEARTBEAT,
    Sizes,
    Timeline,
    blob_problems,
    compare,
    expect_revisions,
    fill,
    limit_pages,
)

#: Room left on the receiving side: a few hundred of the ~400-byte documents.
FREE_PAGES = 40


@pytest.mark.parametrize("kind", [ReplicatorType.PUSH, ReplicatorType.PULL])
async def test_disk_full_on_the_receiving_side(
    make_db: Any, make_listener: Any, scale: Sizes, kind: ReplicatorType
) -> None:
    client, server = make_db("client"), make_db("server")
    source, target = (client, server) if kind is ReplicatorType.PUSH else (server, client)
    expected = fill(source.default_collection(), scale.docs, "d", pad=300)
    listener = await make_listener(server)
    limit_pages(target, FREE_PAGES)
    replicator = Replicator(
        ReplicatorConfiguration(
            URLEndpoint(listener.urls[0]),
            [client.default_collection()],
            replicator_type=kind,
            heartbeat=QUIET_HEARTBEAT,
            max_attempt_wait_time=1,
        )
    )
    timeline = Timeline().attach(replicator)
    replicator.start()
    status = await replicator.wait_stopped(60)
    tcoll, scoll = target.default_collection(), source.default_collection()
    stored = {d.id: d.rev_id for d in tcoll.iter_documents(include_deleted=True)}

    problems: list[str] = []
    if not 0 < len(stored) < len(expected):
        problems.append(f"the disk did not fill up mid-way: {len(stored)} of {len(expected)}")
    if status.activity is not ActivityLevel.STOPPED:
        problems.append(f"ended {status.activity.name}")
    if status.error is None or "disk full" not in str(status.error).lower():
        problems.append(
            f"the replication ended with error {status.error!r} after storing only "
            f"{len(stored)} of {len(expected)} documents; expected a clear 'disk full' error"
        )
    if target.integrity_check() != "ok":
        problems.append(f"integrity_check: {target.integrity_check()}")
    wrong = [k for k, rev in stored.items() if expected.get(k) != rev]
    if wrong:
        problems.append(f"{len(wrong)} stored documents are not the source's: {wrong[:5]}")
    problems += blob_problems(tcoll)

    limit_pages(target, None)  # space freed: the same replicator, started again, finishes
    replicator.start()
    again = await replicator.wait_stopped(60)
    problems += compare(tcoll, scoll) + expect_revisions(tcoll, expected)
    if again.activity is not ActivityLevel.STOPPED or again.error is not None:
        problems.append(f"after freeing space: {again.activity.name}, {again.error!r}")
    assert not problems, "\n".join(problems) + f"\nlevels: {timeline.levels()}"
