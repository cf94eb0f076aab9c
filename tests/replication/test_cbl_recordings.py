"""Wire compatibility with real Couchbase Lite 3.2.4, driven by recorded sessions.

shared/vectors/cbl-3.2.4-sessions holds complete sessions between two real Couchbase
Lite peers. These tests

1. replay the real ACTIVE peer's requests against our passive `ReplicationSession` and
   check our replies and requests against what the real PASSIVE peer did;
2. run our `Replicator` against a fake passive answering as the real passive did, and
   check what we send against what the real ACTIVE peer sent;
3. decode every recorded message with `engine.replication.messages`.

Content rules are compared, not bytes: message order, batching, compression and
checkpoint `rev`s may differ (see the sessions README, "Caveats").
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine.replication import (
    Replicator,
    ReplicatorConfiguration,
    ReplicatorType,
    URLEndpoint,
)
from engine.replication.messages import (
    RevMessage,
    decode_changes,
    decode_changes_reply,
    decode_proposals,
    decode_propose_reply,
    encode_changes,
    encode_changes_reply,
    encode_proposals,
    encode_propose_reply,
    parse_history,
)
from engine.store import Collection, Database
from tests.replication.cbl_replay import (
    DEFAULT,
    SESSIONS,
    FakePassive,
    Msg,
    PassiveReplay,
    PassiveResult,
    Recording,
    Seen,
    all_sessions,
    apply_json_delta,
    iter_client_frame_messages,
    open_collection,
    parse_command,
    rev_generation,
    seed_server,
)

#: LiteCore's default maximum revision-tree depth, announced as `maxHistory`.
CBL_MAX_HISTORY = 50

_RECORDINGS: dict[str, Recording] = {}


def recording(name: str) -> Recording:
    if name not in _RECORDINGS:
        _RECORDINGS[name] = Recording(name)
    return _RECORDINGS[name]


@pytest.fixture
def new_db(tmp_path: Path) -> Iterator[Any]:
    opened: list[Database] = []

    def make(name: str, **options: Any) -> Database:
        db = Database(name, tmp_path, **options)
        opened.append(db)
        return db

    yield make
    for db in opened:
        db.close()


def _fail_if(problems: list[str]) -> None:
    if problems:
        pytest.fail("\n".join(["incompatible with the recording:", *problems]), pytrace=False)


# =========================================================================================
# 3. Codecs on every recorded message
# =========================================================================================


def _json(body: bytes) -> Any:
    return orjson.loads(body) if body else None


@pytest.mark.parametrize("name", all_sessions())
def test_codecs_round_trip_recorded_messages(name: str) -> None:
    rec = recording(name)
    checked = 0
    for m in rec.messages:
        if m.type == "REQ" and m.profile == "changes":
            entries = decode_changes(m.body)
            assert _json(encode_changes(entries)) == (m.json or []), m
        elif m.type == "REQ" and m.profile == "proposeChanges":
            proposals = decode_proposals(m.body)
            assert _json(encode_proposals(proposals)) == (m.json or []), m
        elif m.type == "REQ" and m.profile in ("rev", "norev"):
            parsed = RevMessage.parse(m.properties)
            if m.profile == "rev":
                coll = m.collection
                back = parsed.properties(None if coll is None else int(coll))
                assert back == m.props, m
        elif m.type == "RES" and m.in_reply_to:
            request = next(
                r
                for r in rec.requests(m.in_reply_to["dir"], conn=m.conn)
                if r.number == m.in_reply_to["msgNo"]
            )
            count = len(request.json or [])
            if m.in_reply_to["profile"] == "changes" and request.json:
                wants = decode_changes_reply(m.body, count)
                assert _json(encode_changes_reply(wants)) == m.json, m
            elif m.in_reply_to["profile"] == "proposeChanges" and request.json:
                verdicts = decode_propose_reply(m.body, count)
                include = request.properties.get("conflictIncludesRev") == "true"
                assert _json(encode_propose_reply(verdicts, include_rev=include)) == m.json, m
            else:
                continue
        else:
            continue
        checked += 1
    assert checked > 0


def test_codecs_decode_real_client_frames() -> None:
    """The real client's messages of cbl-3.2.4/*.jsonl decode without errors."""
    checked = 0
    for _, msg in iter_client_frame_messages():
        props = msg.get("properties") or {}
        body = msg.get("body") or {}
        raw = orjson.dumps(body["json"]) if "json" in body else b""
        profile = props.get("Profile")
        if msg["type"] == "REQ" and profile == "proposeChanges":
            assert _json(encode_proposals(decode_proposals(raw))) == body["json"]
        elif msg["type"] == "REQ" and profile == "rev":
            RevMessage.parse(props)
        elif msg["type"] == "RES" and isinstance(body.get("json"), list):
            # replies to the test peer's `changes`: no request at hand, so count = length
            items = body["json"]
            if all(isinstance(i, list) or i == 0 for i in items):
                decode_changes_reply(raw, len(items))
        else:
            continue
        checked += 1
    assert checked > 0


# =========================================================================================
# 1. Our passive side vs the real active peer
# =========================================================================================


def _full_bodies(rec: Recording) -> dict[tuple[str, str, str], Any]:
    """(collection, docID, revID) -> full JSON body, from revs (deltas applied) and commands."""
    bodies: dict[tuple[str, str, str], Any] = {}
    for m in rec.messages:
        if m.type == "REQ" and m.profile == "rev":
            coll = rec.collection_name(m)
            key = (coll, m.properties["id"], m.properties["rev"])
            src = m.properties.get("deltaSrc")
            if src:
                base = bodies[(coll, m.properties["id"], src)]
                bodies[key] = apply_json_delta(orjson.dumps(base), m.body)
            else:
                bodies[key] = m.json
    return bodies


def _norm_history(value: str | None) -> list[str]:
    return parse_history(value or "")


def check_passive(rec: Recording, replay: PassiveReplay, db: Database) -> list[str]:
    """Everything our passive did, against what the real passive did."""
    result: PassiveResult = replay.result
    problems = list(result.problems)
    bodies = _full_bodies(rec)
    # -- our replies to the client's requests --
    for answer in result.answers:
        m = answer.request
        where = f"conn {m.conn} c2s #{m.number} {m.profile}"
        recorded = rec.reply_to(m)
        if recorded is None:
            continue
        if recorded.type == "ERR":
            if answer.error is None:
                problems.append(f"{where}: expected ERR {recorded.properties}, got RES")
                continue
            got = (answer.error.domain, str(answer.error.code))
            want = (recorded.properties["Error-Domain"], recorded.properties["Error-Code"])
            if got != want:
                problems.append(f"{where}: expected error {want}, got {got}")
            if answer.error.message or answer.properties:
                problems.append(
                    f"{where}: the real peer's error has an empty body and no other properties;"
                    f" ours has body {answer.error.message!r}, properties {answer.properties}"
                )
            continue
        if answer.error is not None:
            problems.append(
                f"{where}: expected RES {recorded.properties} {recorded.json!r}, got ERR "
                f"{answer.error.domain} {answer.error.code} {answer.error.message!r}"
            )
            continue
        ours_json = (
            orjson.loads(answer.body) if answer.body and m.profile != "getAttachment" else None
        )
        if m.profile == "proposeChanges":
            if answer.properties != recorded.properties:
                problems.append(
                    f"{where}: reply properties {answer.properties}, expected {recorded.properties}"
                )
            if ours_json != recorded.json:
                problems.append(f"{where}: reply body {ours_json!r}, expected {recorded.json!r}")
        elif m.profile == "getCheckpoint":
            if not answer.properties.get("rev"):
                problems.append(f"{where}: reply lacks `rev`")
            if ours_json != recorded.json:
                problems.append(f"{where}: checkpoint {ours_json!r}, expected {recorded.json!r}")
        elif m.profile == "getCollections":
            want = recorded.json
            if not isinstance(ours_json, list) or len(ours_json) != len(want):
                problems.append(f"{where}: reply {ours_json!r}, expected {want!r}")
                continue
            for ours_cp, want_cp in zip(ours_json, want, strict=True):
                if want_cp == {} or want_cp is None:
                    if ours_cp != want_cp:
                        problems.append(f"{where}: entry {ours_cp!r}, expected {want_cp!r}")
                    continue
                ours_rest = {k: v for k, v in (ours_cp or {}).items() if k != "rev"}
                want_rest = {k: v for k, v in want_cp.items() if k != "rev"}
                if ours_rest != want_rest or not (ours_cp or {}).get("rev"):
                    problems.append(f"{where}: entry {ours_cp!r}, expected {want_cp!r}")
        elif m.profile == "setCheckpoint":
            if not answer.properties.get("rev"):
                problems.append(f"{where}: reply lacks the new checkpoint `rev`")
        elif m.profile in ("rev", "subChanges"):
            if answer.body:
                problems.append(f"{where}: expected an empty reply, got {answer.body[:80]!r}")
        elif m.profile == "getAttachment":
            if answer.body != recorded.body:
                problems.append(f"{where}: blob content differs ({len(answer.body)} bytes)")
            if m.properties.get("compress") == "true" and not answer.flags & 0x08:
                problems.append(f"{where}: `compress:true` asked, reply not compressed")
    # -- the requests our passive sent --
    for conn in rec.conns:
        problems += _check_passive_requests(rec, result, conn, bodies)
    # -- final database contents --
    problems += check_final_docs(rec, db)
    return problems


def _check_passive_requests(
    rec: Recording, result: PassiveResult, conn: int, bodies: dict[tuple[str, str, str], Any]
) -> list[str]:
    problems: list[str] = []
    ours = [s for s in result.seen if s.conn == conn]
    names = rec.collection_names(conn)

    def coll_name(props: dict[str, str]) -> str:
        c = props.get("collection")
        return DEFAULT if names is None or c is None else names[int(c)]

    # changes: entries, shape, flags, caught-up marker
    colls = {m.collection for m in rec.requests("c2s", "subChanges", conn)}
    for coll in sorted(colls, key=str):
        want_entries = [
            e[:4]
            for m in rec.requests("s2c", "changes", conn)
            if m.collection == coll and m.json
            for e in m.json
        ]
        got_entries: list[Any] = []
        markers = 0
        for s in ours:
            if s.profile != "changes" or s.properties.get("collection") != coll:
                continue
            entries = s.json()
            if not entries:
                markers += 1
                if not (s.urgent and s.no_reply):
                    problems.append(
                        f"conn {conn}: empty `changes` (caught up) must be urgent+noreply; "
                        f"ours urgent={s.urgent} noreply={s.no_reply}"
                    )
                continue
            if s.no_reply or not s.urgent:
                problems.append(f"conn {conn}: `changes` must be urgent and expect a reply")
            for e in entries:
                ok = (
                    isinstance(e, list)
                    and len(e) == 5
                    and isinstance(e[0], int)
                    and e[3] in (0, 1)
                    and isinstance(e[4], int)
                    and e[4] > 0
                )
                if not ok:
                    problems.append(
                        f"conn {conn}: changes entry {e!r} is not "
                        "[seq, docID, revID, deleted(0|1), bodySize]"
                    )
                got_entries.append(e[:4])
        if got_entries != want_entries:
            problems.append(
                f"conn {conn} collection {coll}: changes entries {got_entries!r}, "
                f"expected {want_entries!r}"
            )
        if markers < 1:
            problems.append(
                f"conn {conn} collection {coll}: no empty `changes` (caught-up marker) sent"
            )
    # rev / norev / getAttachment
    recorded_reqs = [m for m in rec.requests("s2c", conn=conn) if m.profile != "changes"]
    matched: set[int] = set()
    for m in recorded_reqs:
        key_props = ("id", "rev") if m.profile in ("rev", "norev") else ("digest",)
        # norev, or the requested revision itself if our passive still has its body
        profiles = ("norev", "rev") if m.profile == "norev" else (m.profile,)
        found = [
            s
            for s in ours
            if s.profile in profiles
            and s.order not in matched
            and s.properties.get("collection") == m.collection
            and all(s.properties.get(k) == m.properties.get(k) for k in key_props)
        ]
        where = f"conn {conn} s2c {m.profile} {[m.properties.get(k) for k in key_props]}"
        if not found:
            problems.append(f"{where}: our passive did not send it")
            continue
        s = found[0]
        matched.add(s.order)
        if m.profile == "rev" or s.profile == "rev":
            if m.profile == "norev":
                if s.properties.get("sequence") != m.properties.get("sequence"):
                    problems.append(f"{where}: sent as rev with sequence {s.properties}")
                continue
            problems += _compare_rev(where, rec, m, s, bodies, coll_name(s.properties))
        elif m.profile == "norev":
            for k in ("sequence", "error"):
                if s.properties.get(k) != m.properties.get(k):
                    problems.append(
                        f"{where}: {k}={s.properties.get(k)!r}, expected {m.properties.get(k)!r}"
                    )
            if not s.no_reply:
                problems.append(f"{where}: norev must be noreply")
        elif m.profile == "getAttachment":
            for k in ("docID", "compress"):
                if s.properties.get(k) != m.properties.get(k):
                    problems.append(
                        f"{where}: {k}={s.properties.get(k)!r}, expected {m.properties.get(k)!r}"
                    )
            # it must come before our answer to the client's rev of that document
            rev_answers = [
                a
                for a in result.answers
                if a.request.conn == conn
                and a.request.profile == "rev"
                and a.request.properties.get("id") == m.properties.get("docID")
            ]
            if rev_answers and not all(s.order < a.done for a in rev_answers):
                problems.append(f"{where}: sent after answering the rev")
    for s in ours:
        if s.profile not in ("changes",) and s.order not in matched:
            problems.append(f"conn {conn}: unexpected {s.profile} {s.props}")
    return problems


def _history_and_deleted(where: str, got: dict[str, str], want: dict[str, str]) -> list[str]:
    """A `rev`'s history (down to the known ancestor) and deletion flag, as recorded."""
    problems = []
    if _norm_history(got.get("history")) != _norm_history(want.get("history")):
        problems.append(
            f"{where}: history {got.get('history')!r}, expected {want.get('history')!r}"
        )
    if ("deleted" in got) != ("deleted" in want):
        problems.append(
            f"{where}: deleted {got.get('deleted')!r}, expected {want.get('deleted')!r}"
        )
    return problems


def _compare_rev(
    where: str,
    rec: Recording,
    m: Msg,
    s: Any,
    bodies: dict[tuple[str, str, str], Any],
    coll: str,
) -> list[str]:
    problems: list[str] = []
    want, got = m.properties, s.properties
    if got.get("sequence") != want.get("sequence"):
        problems.append(f"{where}: sequence {got.get('sequence')!r}, expected {want['sequence']!r}")
    problems += _history_and_deleted(where, got, want)
    if "noconflicts" in got:
        problems.append(f"{where}: the real passive sends no `noconflicts`")
    if s.no_reply:
        problems.append(f"{where}: rev must expect a reply")
    full = bodies.get((coll, want["id"], want["rev"]))
    if want.get("deltaSrc") and got.get("deltaSrc") != want["deltaSrc"]:
        problems.append(
            f"{where}: deltaSrc {got.get('deltaSrc')!r}, expected {want['deltaSrc']!r} "
            f"(a JSON delta against the revision the client listed; ours sent "
            f"{len(s.body)} bytes, the real peer {len(m.body)})"
        )
    if got.get("deltaSrc"):
        base = bodies.get((coll, want["id"], got["deltaSrc"]))
        if base is None:
            problems.append(f"{where}: deltaSrc {got['deltaSrc']} is not a revision of the peer")
            return problems
        try:
            body = apply_json_delta(orjson.dumps(base), s.body)
        except Exception as exc:
            problems.append(f"{where}: our delta does not apply: {exc}")
            return problems
    else:
        body = s.json()
    if full is not None and body != full:
        problems.append(f"{where}: body {body!r:.200}, expected {full!r:.200}")
    return problems


def check_final_docs(rec: Recording, db: Database) -> list[str]:
    problems: list[str] = []
    final = rec.final_docs()
    by_coll: dict[str, dict[str, dict[str, Any]]] = {}
    for d in final:
        by_coll.setdefault(d["collection"], {})[d["id"]] = d
    for coll_name, docs in by_coll.items():
        coll = open_collection(db, coll_name)
        ids = set(coll.document_ids(include_deleted=True))
        if ids != set(docs):
            problems.append(f"final docs of {coll_name}: {sorted(ids)}, expected {sorted(docs)}")
        for doc_id, d in docs.items():
            doc = coll.get_document(doc_id, include_deleted=True)
            if doc is None:
                continue
            got = (doc.rev_id, doc.deleted, bool(doc.conflicts))
            want = (d["rev"], d["deleted"], d["conflicted"])
            if got != want:
                problems.append(f"final {coll_name} {doc_id}: {got}, expected {want}")
    return problems


PASSIVE_SCENARIOS = [
    "push-3",
    "pull-3",
    "pushpull-auth",
    "pull-then-update",
    "conflict",
    "deletion",
    "blob",
    "delta",
    "collections-clean",
    "continuous",
    "norev",
]


async def replay_against_passive(
    name: str, db: Database, *, delta_sync: bool = True
) -> PassiveReplay:
    rec = recording(name)
    await db.run(seed_server, db, rec)
    replay = PassiveReplay(rec, db, delta_sync=delta_sync)
    await asyncio.wait_for(replay.run(), 15)
    return replay


@pytest.mark.parametrize("name", PASSIVE_SCENARIOS)
async def test_passive_answers_like_couchbase_lite(name: str, new_db: Any) -> None:
    """Our passive peer, fed the real client's messages, behaves as the real passive did."""
    # LiteCore's default tree depth, so that `maxHistory` can be compared; the default of
    # our Database is checked by test_passive_default_max_history.
    db = new_db("passive", max_rev_tree_depth=CBL_MAX_HISTORY)
    replay = await replay_against_passive(name, db)
    _fail_if(check_passive(recording(name), replay, db))


async def test_passive_default_max_history(new_db: Any) -> None:
    """A default database announces maxHistory 50 like LiteCore (kDefaultMaxRevTreeDepth).

    With less, a Couchbase Lite client that made more edits offline than our depth sends a
    `rev` whose history stops short of our current revision, and `noconflicts` refuses it.
    """
    db = new_db("passive")
    replay = await replay_against_passive("push-3", db)
    replies = [a for a in replay.result.answers if a.request.profile == "proposeChanges"]
    assert replies
    assert replies[0].properties.get("maxHistory") == str(CBL_MAX_HISTORY)


# =========================================================================================
# 2. Our active side vs the real passive peer
# =========================================================================================


def _client_runs(rec: Recording) -> list[tuple[int, list[str]]]:
    """(conn, cbl-repl command line) of each client run that reached the WebSocket."""
    starts = rec.notes("clientStart")
    conns = rec.conns
    out = []
    for i, note in enumerate(starts):
        if i < len(conns):
            out.append((conns[i], list(note["cmd"])))
    return out


def _rtype(cmd: list[str]) -> ReplicatorType:
    if "--pushpull" in cmd:
        return ReplicatorType.PUSH_AND_PULL
    return ReplicatorType.PUSH if "--push" in cmd else ReplicatorType.PULL


def _local_edits(rec: Recording, conn: int, cmd: list[str], db: Database) -> None:
    """Make the client's local edits of this run, with the revIDs the real client made."""
    bodies = _full_bodies(rec)
    puts = {cmd[i + 1]: orjson.loads(cmd[i + 2]) for i, a in enumerate(cmd) if a == "--put"}
    for m in rec.requests("c2s", "proposeChanges", conn):
        coll = open_collection(db, rec.collection_name(m))
        for doc_id, rev, server_rev, *_ in m.json or []:
            current = coll.get_document(doc_id, include_deleted=True)
            if current is not None and rev in _tree_revs(coll, doc_id):
                continue
            if (current.rev_id if current else "") != server_rev:
                continue  # made by our own conflict resolution
            revs = [
                r
                for r in rec.requests("c2s", "rev")
                if (r.properties["id"], r.properties["rev"]) == (doc_id, rev)
            ]
            deleted = bool(revs and "deleted" in revs[0].properties)
            body = {} if deleted else bodies.get((coll.full_name, doc_id, rev), puts.get(doc_id))
            assert body is not None, (doc_id, rev)
            coll.insert_revision(doc_id, rev, [server_rev] if server_rev else [], body, deleted)


def _tree_revs(coll: Collection, doc_id: str) -> set[str]:
    row = coll._row(doc_id)
    return set() if row is None else {r.rev_id for r in row.rev_tree().revs}


async def run_active(
    name: str, db: Database, conns: list[int] | None = None
) -> tuple[FakePassive, list[Any]]:
    rec = recording(name)
    fake = FakePassive(rec)
    server, port = await fake.serve()
    statuses = []
    try:
        for conn, cmd in _client_runs(rec):
            if conns is not None and conn not in conns:
                continue
            await db.run(_local_edits, rec, conn, cmd, db)
            names = rec.collection_names(conn) or [DEFAULT]
            colls = [open_collection(db, n) for n in names]
            fake.use_conn(conn)
            config = ReplicatorConfiguration(
                target=URLEndpoint(f"ws://127.0.0.1:{port}/db"),
                collections=colls,
                replicator_type=_rtype(cmd),
                enable_delta_sync=True,
                max_attempts=1,
            )
            replicator = Replicator(config)
            replicator.start()
            status = await replicator.wait_stopped(timeout=10)
            await fake.drain()
            statuses.append(status)
            if status.error is not None:
                fake.problems.append(f"run {conn}: our replicator failed: {status.error!r}")
    finally:
        server.close()
        await server.wait_closed()
    return fake, statuses


def _sent(ours: list[Seen], profile: str, **props: str | None) -> list[Seen]:
    """Our requests of `profile` whose properties have these values (None: absent)."""
    return [
        s
        for s in ours
        if s.profile == profile and all(s.properties.get(k) == v for k, v in props.items())
    ]


def _truthy(value: str | None) -> bool | None:
    return None if value is None else value.lower() in ("1", "true")


def check_active(
    rec: Recording, fake: FakePassive, db: Database, *, compare_local: bool = True
) -> list[str]:
    problems = list(fake.problems)
    conns = sorted({s.conn for s in fake.seen})
    for conn in conns:
        ours = [s for s in fake.seen if s.conn == conn]
        want_first = rec.requests("c2s", conn=conn)[0].profile
        if not ours or ours[0].profile != want_first:
            problems.append(
                f"conn {conn}: first message {ours[0].profile if ours else None}, "
                f"expected {want_first}"
            )
        # subChanges
        for m in rec.requests("c2s", "subChanges", conn):
            got = _sent(ours, "subChanges", collection=m.collection)
            if len(got) != 1:
                problems.append(f"conn {conn}: {len(got)} subChanges for collection {m.collection}")
                continue
            for key in ("since", "batch", "versioning", "collection"):
                if got[0].properties.get(key) != m.properties.get(key):
                    problems.append(
                        f"conn {conn} subChanges: {key}={got[0].properties.get(key)!r}, "
                        f"expected {m.properties.get(key)!r}"
                    )
            for key in ("activeOnly", "continuous"):
                if _truthy(got[0].properties.get(key)) != _truthy(m.properties.get(key)):
                    problems.append(
                        f"conn {conn} subChanges: {key}={got[0].properties.get(key)!r}, "
                        f"expected {m.properties.get(key)!r}"
                    )
        if not rec.requests("c2s", "subChanges", conn) and any(
            s.profile == "subChanges" for s in ours
        ):
            problems.append(f"conn {conn}: a push-only replicator sent subChanges")
        # replies to changes
        first: set[str | None] = set()
        for c, m, props, body in fake.changes_replies:
            if c != conn:
                continue
            recorded = rec.reply_to(m)
            assert recorded is not None
            where = f"conn {conn} reply to changes {[e[1] for e in m.json]}"
            if body != recorded.json:
                problems.append(f"{where}: {body!r}, expected {recorded.json!r}")
            is_first = m.collection not in first
            first.add(m.collection)
            want_props = {"maxHistory": str(CBL_MAX_HISTORY), "blobs": "true"}
            if is_first:
                want_props["deltas"] = "true"
            if props != want_props:
                problems.append(f"{where}: properties {props}, expected {want_props}")
        # setCheckpoint
        cps = [s for s in ours if s.profile == "setCheckpoint"]
        for s in cps:
            body = s.json()
            if not s.properties.get("client") or "rev" not in s.properties:
                problems.append(f"conn {conn}: setCheckpoint needs `client` and `rev`: {s.props}")
            if not isinstance(body, dict) or not isinstance(body.get("time"), int):
                problems.append(f"conn {conn}: setCheckpoint body {body!r} lacks `time`")
        for m in rec.requests("c2s", "setCheckpoint", conn)[-1:]:
            mine = [s for s in cps if s.properties.get("collection") == m.collection]
            moved = any(s.profile == "rev" for s in ours) or any(
                c == conn and any(w != 0 for w in body) for c, _, _, body in fake.changes_replies
            )
            if not mine and moved:
                problems.append(f"conn {conn}: no setCheckpoint for collection {m.collection}")
            if not mine:
                continue
            last = mine[-1].json() or {}
            if last.get("remote") != m.json.get("remote"):
                problems.append(
                    f"conn {conn}: final checkpoint remote={last.get('remote')!r}, "
                    f"expected {m.json.get('remote')!r}"
                )
            # how far the push checkpoint got depends on timing; it must not lag behind
            want_local = m.json.get("local")
            if compare_local and want_local is not None and (last.get("local") or 0) < want_local:
                problems.append(
                    f"conn {conn}: final checkpoint local={last.get('local')!r}, "
                    f"expected at least {want_local!r}"
                )
        # getAttachment: what the real client asked for
        for m in rec.requests("c2s", "getAttachment", conn):
            got = _sent(ours, "getAttachment", digest=m.properties.get("digest"))
            if not got:
                problems.append(f"conn {conn}: no getAttachment {m.props}")
            for s in got:
                for key in ("docID", "compress", "collection"):
                    if s.properties.get(key) != m.properties.get(key):
                        problems.append(
                            f"conn {conn} getAttachment: {key}={s.properties.get(key)!r}, "
                            f"expected {m.properties.get(key)!r}"
                        )
        # empty proposeChanges: urgent+noreply
        for s in ours:
            if s.profile == "proposeChanges" and not s.json() and not (s.urgent and s.no_reply):
                problems.append(f"conn {conn}: empty proposeChanges must be urgent+noreply")
    problems += _check_pushes(rec, fake, db)
    return problems


def _check_pushes(rec: Recording, fake: FakePassive, db: Database) -> list[str]:
    """proposeChanges and rev across the whole scenario (a push may move to another run)."""
    problems: list[str] = []

    def rev_key(coll: str | None, doc_id: str, rev: str) -> tuple[Any, ...]:
        # our conflict resolution has our own revID: compare its generation
        coll_name = DEFAULT if coll is None else str(coll)
        return (coll_name, doc_id, rev if _known_rev(rec, doc_id, rev) else rev_generation(rev))

    want_props: list[tuple[Any, ...]] = []
    for m in rec.requests("c2s", "proposeChanges"):
        if m.props.get("conflictIncludesRev") != "true" and m.json:
            continue
        for e in m.json or []:
            want_props.append((*rev_key(m.collection, e[0], e[1]), e[2]))
    got_props: list[tuple[Any, ...]] = []
    for s in fake.seen:
        if s.profile != "proposeChanges" or not s.json():
            continue
        if s.properties.get("conflictIncludesRev") != "true":
            problems.append(f"proposeChanges without conflictIncludesRev:true: {s.props}")
        for e in s.json():
            if not (len(e) == 4 and isinstance(e[2], str) and isinstance(e[3], int)):
                problems.append(f"proposeChanges entry {e!r} is not [id, rev, serverRev|'', size]")
            got_props.append((*rev_key(s.properties.get("collection"), e[0], e[1]), e[2]))
    if sorted(got_props, key=repr) != sorted(want_props, key=repr):
        problems.append(f"proposals {got_props!r}, expected {want_props!r}")
    bodies = _full_bodies(rec)
    want_revs = {}
    for m in rec.requests("c2s", "rev"):
        key = rev_key(m.collection, m.properties["id"], m.properties["rev"])
        want_revs[key] = m
    for s in fake.seen:
        if s.profile != "rev":
            continue
        key = rev_key(s.properties.get("collection"), s.properties["id"], s.properties["rev"])
        m = want_revs.pop(key, None)
        where = f"rev {key}"
        if m is None:
            problems.append(f"{where}: the real client did not send it")
            continue
        got, want = s.properties, m.properties
        if got.get("noconflicts") not in ("1", "true"):
            problems.append(f"{where}: noconflicts={got.get('noconflicts')!r}, expected '1'")
        problems += _history_and_deleted(where, got, want)
        if not got.get("sequence"):
            problems.append(f"{where}: no `sequence`")
        coll_name = rec.collection_name(m)
        full = bodies[(coll_name, want["id"], want["rev"])]
        if want.get("deltaSrc") and got.get("deltaSrc") != want["deltaSrc"]:
            problems.append(
                f"{where}: deltaSrc {got.get('deltaSrc')!r}, expected {want['deltaSrc']!r}"
            )
        body = s.json()
        if got.get("deltaSrc"):
            base = bodies.get((coll_name, want["id"], got["deltaSrc"]))
            try:
                body = apply_json_delta(orjson.dumps(base), s.body)
            except Exception as exc:
                problems.append(f"{where}: our delta does not apply to {got['deltaSrc']}: {exc}")
                continue
        if body != full:
            problems.append(f"{where}: body {body!r:.200}, expected {full!r:.200}")
    for key in want_revs:
        problems.append(f"rev {key}: the real client sent it, ours did not")
    return problems


def _known_rev(rec: Recording, doc_id: str, rev: str) -> bool:
    """True unless `rev` was made by a conflict resolution (our revID differs)."""
    resolved = rec.notes("clientExit")
    return (
        not any(n["summary"].get("conflictsResolved") for n in resolved) or rev_generation(rev) < 3
    )


@pytest.mark.parametrize(
    "name", ["push-3", "pull-3", "pushpull-auth", "pull-then-update", "deletion", "blob", "delta"]
)
async def test_active_sends_like_couchbase_lite(name: str, new_db: Any) -> None:
    db = new_db("active", max_rev_tree_depth=CBL_MAX_HISTORY)
    fake, _ = await run_active(name, db)
    rec = recording(name)
    _fail_if(check_active(rec, fake, db))
    # our database holds what the real client pulled
    coll = db.default_collection()
    bodies = _full_bodies(rec)
    for m in rec.requests("s2c", "rev"):
        doc_id, rev = m.properties["id"], m.properties["rev"]
        assert rev in _tree_revs(coll, doc_id), m.props
        doc = coll.get_document(doc_id, include_deleted=True)
        if doc is not None and doc.rev_id == rev:
            assert doc.properties == bodies[(DEFAULT, doc_id, rev)], m.props


async def test_active_collections_clean(new_db: Any) -> None:
    db = new_db("active", max_rev_tree_depth=CBL_MAX_HISTORY)
    fake, _ = await run_active("collections-clean", db)
    rec = recording("collections-clean")
    _fail_if(check_active(rec, fake, db))
    firsts = [s for s in fake.seen if s.profile in ("getCollections", "getCheckpoint")]
    assert all(s.profile == "getCollections" for s in firsts)


async def test_active_conflict_resolution(new_db: Any) -> None:
    """409 on proposeChanges, the server branch pulled, the local winner put on top of it."""
    db = new_db("active", max_rev_tree_depth=CBL_MAX_HISTORY)
    fake, _ = await run_active("conflict", db)
    rec = recording("conflict")
    _fail_if(check_active(rec, fake, db, compare_local=False))
    coll = db.default_collection()
    doc = coll.get_document("doc-c")
    assert doc is not None and not doc.conflicts
    server_rev = "2-5950ac6cf9ecbddb31b9c691f6b8330d92f3a1b0"
    assert rev_generation(doc.rev_id) == 3
    tree = coll._row("doc-c").rev_tree()  # type: ignore[union-attr]
    index = tree.find(doc.rev_id)
    assert index is not None
    assert tree.history(index)[1] == server_rev
    assert doc.properties == {"v": "client edit", "n": 2, "k": 0}
    # the resolution reached the passive: [doc-c, 3-…, 2-5950…] then rev{history: 2-5950…}
    pushed = [s for s in fake.seen if s.profile == "rev" and s.properties["id"] == "doc-c"]
    assert [s.properties.get("history") for s in pushed] == [server_rev]


@pytest.mark.parametrize("name", ["push-3", "pushpull-auth", "deletion", "collections-clean"])
async def test_active_pushes_with_propose_changes_only(name: str, new_db: Any) -> None:
    """Couchbase Lite's active peer never pushes with `changes`, only with `proposeChanges`.

    A Couchbase Lite passive peer refuses `changes` with a 409 error (README, facts), so a
    `changes` offer costs every connection an error and a round trip before pushing.
    """
    db = new_db("active", max_rev_tree_depth=CBL_MAX_HISTORY)
    fake, _ = await run_active(name, db)
    offered = [(s.conn, s.json()) for s in fake.seen if s.profile == "changes"]
    assert offered == [], f"our replicator sent `changes` (answered 409): {offered}"


# keep the recordings' server commands parseable (used by the replays above)
def test_server_commands_parse() -> None:
    for name in all_sessions():
        for note in recording(name).notes("serverCommand"):
            verb, doc_id, _ = parse_command(note["command"])
            assert verb in ("put", "delete") and doc_id


def test_vectors_present() -> None:
    assert SESSIONS.is_dir()
