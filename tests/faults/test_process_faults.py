"""Scenarios 3 and 4: a process is SIGKILLed mid-replication and restarted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.replication import (
    ActivityLevel,
    Replicator,
    ReplicatorConfiguration,
    ReplicatorType,
    URLEndpoint,
    checkpoint_id,
)
from engine.replication.checkpoint import local_checkpoint_key
from engine.store import Database

from .support import (
    PYTHON,
    QUIET_HEARTBEAT,
    Sizes,
    Timeline,
    backoff_problems,
    compare,
    expect_revisions,
    fill,
    listen_argv,
    schedule,
)

#: Bytes per second through the proxy while a process is to be killed mid-transfer.
SLOW = 150_000


async def test_listener_killed_mid_push_and_restarted(
    tmp_path: Path, make_db: Any, make_proxy: Any, spawn: Any, scale: Sizes
) -> None:
    """Scenario 3: SIGKILL the listener process mid-push; the replicator reconnects alone."""
    client = make_db("client")
    coll = client.default_collection()
    expected = fill(coll, scale.docs, "d", pad=300)
    server_dir = tmp_path / "server.peerbase"
    listener = await spawn(listen_argv(server_dir, 0), "listener-1")
    port = (await listener.wait_line("listening", 30))["port"]
    proxy = await make_proxy(port)
    proxy.throttle(SLOW)  # the kill must land mid-push
    cap = 3.0  # retries after 2 s, then 3 s (4 s capped)
    replicator = Replicator(
        ReplicatorConfiguration(
            URLEndpoint(proxy.url("server")),
            [coll],
            replicator_type=ReplicatorType.PUSH,
            heartbeat=QUIET_HEARTBEAT,
            max_attempt_wait_time=cap,
        )
    )
    timeline = Timeline().attach(replicator)
    replicator.start()
    await timeline.wait_for(
        lambda: replicator.status.progress.completed >= len(expected) // 4, 60, "a quarter pushed"
    )
    await listener.kill()
    pushed_before_kill = replicator.status.progress.completed
    # down for two refused reconnections, then back on the same port
    await timeline.wait_for(
        lambda: sum(not a.connected for a in timeline.attempts()) >= 2, 30, "two refused retries"
    )
    proxy.throttle(None)
    restarted = await spawn(listen_argv(server_dir, port), "listener-2")
    await restarted.wait_line("listening", 30)
    status = await replicator.wait_stopped(60)
    assert await restarted.terminate() == 0, restarted.describe()

    problems: list[str] = []
    if not 0 < pushed_before_kill < len(expected):
        problems.append(f"the kill did not land mid-push ({pushed_before_kill} pushed)")
    with Database.open_path(server_dir) as server:
        problems += compare(coll, server.default_collection())
        problems += expect_revisions(server.default_collection(), expected)
    problems += backoff_problems(timeline, cap)
    if status.activity is not ActivityLevel.STOPPED or status.error is not None:
        problems.append(f"the replication finished {status.activity.name}, {status.error!r}")
    assert not problems, "\n".join(problems) + "\n--- attempts ---\n" + schedule(timeline)


async def test_replicator_killed_mid_pull_resumes_from_its_checkpoint(
    tmp_path: Path, make_db: Any, make_listener: Any, make_proxy: Any, spawn: Any, scale: Sizes
) -> None:
    """Scenario 4: SIGKILL the replicator process mid-pull; restarted, it resumes from its
    checkpoint: the peer announces only what comes after it (at least all the client
    lacks) and re-sends only revisions the killed process had not stored."""
    server = make_db("server")
    scoll = server.default_collection()
    # Several times the revisions a Peerbase peer keeps in flight (4 batches of 200, which
    # complete together, BLIP interleaving them): checkpoints move during the pull.
    expected = fill(scoll, 4 * scale.docs, "d", pad=80)
    sequences = {d.id: d.sequence for d in scoll.iter_documents(include_deleted=True)}
    listener = await make_listener(server)
    proxy = await make_proxy(listener.port)
    proxy.throttle(SLOW)
    client_dir = tmp_path / "client.peerbase"
    with Database.open_path(client_dir) as fresh:
        uuid = fresh.uuid
    url = proxy.url(server.name)
    options = {"doc_ids": [], "push_filter": False, "pull_filter": False}
    cp_id = checkpoint_id(uuid, "url:" + url, "_default._default", options)
    argv = [PYTHON, "-m", "tests.faults.driver", url, "--db", str(client_dir), "--pull"]
    argv += ["--checkpoint-interval", "0.25"]

    first = await spawn(argv, "replicator-1")

    def saved_twice() -> bool:  # the second save implies the client stored the first
        found = server.get_local(f"peer-checkpoint/{cp_id}")
        return found is not None and int(found[0].split("-")[0]) >= 2

    await Timeline().wait_for(saved_twice, 60, f"checkpoints of {cp_id} saved on the peer")
    await first.kill()
    finished_before_kill = bool(first.events("done"))

    with Database.open_path(client_dir) as killed:
        local = killed.get_local(local_checkpoint_key(cp_id))
        present = {d.id: d.rev_id for d in killed.default_collection().iter_documents()}
        integrity = killed.integrity_check()
    remote = server.get_local(f"peer-checkpoint/{cp_id}")
    assert local is not None and remote is not None, (local, remote)
    since = min(int(local[1]["remote"]), int(remote[1]["remote"]))
    after = {doc_id for doc_id, seq in sequences.items() if seq > since}

    proxy.throttle(None)
    second = await spawn(argv, "replicator-2")
    code = await second.wait(60)
    announced = sorted(s for line in second.events("changes") for s in line["sequences"])
    resent = [
        d["id"] for d in second.events("document") if d["dir"] == "pull" and d["error"] is None
    ]

    problems: list[str] = []
    if finished_before_kill or not 0 < len(present) < len(expected) or since <= 0:
        problems.append(
            f"not killed mid-pull after a checkpoint: {len(present)} stored, since={since}"
        )
    if integrity != "ok":
        problems.append(f"integrity_check after SIGKILL: {integrity}")
    done_before = {doc_id for doc_id, seq in sequences.items() if seq <= since}
    if not done_before <= present.keys():
        lost = sorted(done_before - present.keys())
        problems.append(f"the checkpoint covers documents never stored: {lost[:5]}")
    # The peer announces nothing up to the checkpoint, and everything after it that the
    # client lacks. (A Peerbase peer also skips what it knows the client stored: the
    # revisions it saw acknowledged.)
    after_seqs = {sequences[doc_id] for doc_id in after}
    missing_seqs = {sequences[doc_id] for doc_id in expected.keys() - present.keys()}
    if not missing_seqs <= set(announced) <= after_seqs:
        problems.append(
            f"the restarted pull did not resume from the checkpoint {since}: "
            f"{len(announced)} changes announced (from {announced[:1]}), "
            f"{len(after)} come after the checkpoint, {len(missing_seqs)} were missing"
        )
    if len(resent) != len(set(resent)):
        problems.append("a revision was sent twice in the second run")
    if not set(resent) <= after:
        early = sorted(set(resent) - after)
        problems.append(f"re-sent revisions from before the checkpoint: {early[:5]}")
    if set(resent) != expected.keys() - present.keys():
        problems.append(
            f"re-sent {len(resent)} revisions; {len(expected) - len(present)} were missing"
        )
    with Database.open_path(client_dir) as client:
        problems += compare(client.default_collection(), scoll)
        problems += expect_revisions(client.default_collection(), expected)
    if code != 0 or second.events("done")[-1]["error"] is not None:
        problems.append(f"the restarted replicator exited {code}: {second.events('done')}")
    assert not problems, "\n".join(problems) + (
        f"\ncheckpoint {since}: {len(present)} of {len(expected)} stored before the kill, "
        f"{len(after)} after the checkpoint, {len(resent)} re-sent"
    )
