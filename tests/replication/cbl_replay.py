"""Replaying real Couchbase Lite 3.2.4 sessions (shared/vectors) against Peerbase.

* `Recording` loads a `cbl-3.2.4-sessions/*.jsonl` file (decoded `message` lines, notes).
* `PassiveReplay` plays the recorded ACTIVE peer (c2s requests, its answers to the
  passive's requests) against our passive `ReplicationSession` and collects what our
  passive answered and sent.
* `FakePassive` plays the recorded PASSIVE peer against our active `Replicator` and
  collects what the replicator sent.

Only content rules are compared (see the sessions README): message order, batching,
compression and checkpoint `rev`s may differ; profiles, properties and bodies may not.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from engine import blip
from engine.blip import BlipConnection, BlipError, IncomingRequest, OutgoingReply
from engine.jsondelta import apply_delta
from engine.replication import ReplicationSession, SessionOptions
from engine.store import Collection, Database

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors"
SESSIONS = VECTORS / "cbl-3.2.4-sessions"
CLIENT_FRAMES = VECTORS / "cbl-3.2.4"
DEFAULT = "_default._default"

#: How long to wait for a message our side should send (a missing one fails the test).
WAIT = 5.0


# -- recordings -------------------------------------------------------------------------


def body_bytes(body: dict[str, Any] | None) -> bytes:
    """The raw body of a recorded message."""
    if not body:
        return b""
    if "json" in body:
        return orjson.dumps(body["json"])
    if "hex" in body:
        return bytes.fromhex(body["hex"])
    return str(body.get("text", "")).encode()


@dataclass
class Msg:
    """One reassembled BLIP message of a recording."""

    index: int
    conn: int
    dir: str
    type: str
    number: int
    flags: list[str]
    properties: dict[str, str]
    body: bytes
    json: Any
    in_reply_to: dict[str, Any] | None

    @property
    def profile(self) -> str:
        return self.properties.get("Profile", "")

    @property
    def props(self) -> dict[str, str]:
        """Properties without Profile."""
        return {k: v for k, v in self.properties.items() if k != "Profile"}

    @property
    def collection(self) -> str | None:
        return self.properties.get("collection")

    @property
    def no_reply(self) -> bool:
        return "noreply" in self.flags

    @property
    def urgent(self) -> bool:
        return "urgent" in self.flags

    @property
    def compressed(self) -> bool:
        return "compressed" in self.flags


class Recording:
    """A complete session file between two real Couchbase Lite peers."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lines: list[dict[str, Any]] = []
        self.messages: list[Msg] = []
        with (SESSIONS / f"{name}.jsonl").open() as f:
            for i, line in enumerate(f):
                obj = json.loads(line)
                obj["_index"] = i
                self.lines.append(obj)
                if obj.get("type") == "message":
                    body = obj.get("body") or {}
                    self.messages.append(
                        Msg(
                            i,
                            obj["conn"],
                            obj["dir"],
                            obj["msgType"],
                            obj["msgNo"],
                            obj.get("flagNames", []),
                            dict(obj.get("properties") or {}),
                            body_bytes(body),
                            body.get("json"),
                            obj.get("inReplyTo"),
                        )
                    )

    @property
    def conns(self) -> list[int]:
        return sorted({m.conn for m in self.messages})

    def requests(
        self, direction: str, profile: str | None = None, conn: int | None = None
    ) -> list[Msg]:
        return [
            m
            for m in self.messages
            if m.type == "REQ"
            and m.dir == direction
            and (profile is None or m.profile == profile)
            and (conn is None or m.conn == conn)
        ]

    def reply_to(self, req: Msg) -> Msg | None:
        for m in self.messages:
            if (
                m.type in ("RES", "ERR")
                and m.conn == req.conn
                and m.dir != req.dir
                and m.in_reply_to
                and m.in_reply_to.get("msgNo") == req.number
            ):
                return m
        return None

    def notes(self, event: str) -> list[dict[str, Any]]:
        return [x for x in self.lines if x.get("type") == "note" and x.get("event") == event]

    def final_docs(self) -> list[dict[str, Any]]:
        return list(self.notes("serverExit")[-1]["finalDocs"])

    def collection_names(self, conn: int) -> list[str] | None:
        """The collections named by the conn's getCollections (None: legacy connection)."""
        for m in self.requests("c2s", "getCollections", conn):
            return list(m.json["collections"])
        return None

    def collection_name(self, msg: Msg) -> str:
        names = self.collection_names(msg.conn)
        if names is None or msg.collection is None:
            return DEFAULT
        return names[int(msg.collection)]

    def client_pushed(self) -> set[tuple[str, str, str]]:
        """(collection, docID, revID) of every rev the active peer sent."""
        return {
            (self.collection_name(m), m.properties["id"], m.properties["rev"])
            for m in self.requests("c2s", "rev")
        }

    def blob(self, digest: str) -> bytes | None:
        """Content of a blob, from a recorded getAttachment reply."""
        for m in self.messages:
            if (
                m.type == "REQ"
                and m.profile == "getAttachment"
                and m.properties.get("digest") == digest
            ):
                reply = self.reply_to(m)
                if reply is not None and reply.type == "RES":
                    return reply.body
        return None


def all_sessions() -> list[str]:
    return sorted(p.stem for p in SESSIONS.glob("*.jsonl"))


def iter_client_frame_messages() -> Iterator[tuple[str, dict[str, Any]]]:
    """Decoded messages the real client sent in `cbl-3.2.4/*.jsonl` (dir "in")."""
    for path in sorted(CLIENT_FRAMES.glob("*.jsonl")):
        with path.open() as f:
            for line in f:
                obj = json.loads(line)
                if obj.get("dir") == "in" and "message" in obj:
                    yield path.stem, obj["message"]


def rev_generation(rev_id: str) -> int:
    return int(rev_id.split("-", 1)[0])


# -- server-side state of a recorded scenario ----------------------------------------------


def parse_command(command: str) -> tuple[str, str, Any]:
    """`put <id> <json>` or `delete <id>` (serverCommand notes)."""
    verb, _, rest = command.partition(" ")
    if verb == "put":
        doc_id, _, body = rest.partition(" ")
        return verb, doc_id, json.loads(body)
    if verb == "delete":
        return verb, rest.strip(), {}
    raise ValueError(f"unknown server command {command!r}")


def revs_announced_after(rec: Recording, index: int, doc_id: str) -> list[str]:
    """RevIDs the passive announced for `doc_id` after line `index`, in order."""
    out: list[str] = []
    for m in rec.messages:
        if m.index <= index or m.dir != "s2c" or m.type != "REQ":
            continue
        if m.profile == "changes" and isinstance(m.json, list):
            out += [e[2] for e in m.json if e[1] == doc_id]
        elif m.profile in ("rev", "norev") and m.properties.get("id") == doc_id:
            out.append(m.properties["rev"])
    return out


def initial_server_docs(rec: Recording) -> list[tuple[str, int, str, str, dict[str, Any]]]:
    """(collection, recorded sequence, docID, revID, body) the passive held at the start.

    Revisions the passive announced that neither the client pushed nor a server command
    created. A body never sent in a `rev` (norev scenario) is made up; it is never on
    the wire.
    """
    pushed = rec.client_pushed()
    commanded: dict[str, int] = {}
    for note in rec.notes("serverCommand"):
        commanded.setdefault(parse_command(note["command"])[1], note["_index"])
    found: dict[tuple[str, str, str], tuple[int, dict[str, Any] | None]] = {}
    for m in rec.requests("s2c"):
        coll = rec.collection_name(m)
        if m.profile == "changes" and isinstance(m.json, list):
            for seq, doc_id, rev_id, *_ in m.json:
                key = (coll, doc_id, rev_id)
                made_by_command = m.index > commanded.get(doc_id, m.index + 1)
                if rev_generation(rev_id) == 1 and key not in pushed and not made_by_command:
                    found.setdefault(key, (seq, None))
        elif m.profile == "rev":
            key = (coll, m.properties["id"], m.properties["rev"])
            if key in found:
                found[key] = (found[key][0], m.json)
    out = []
    for (coll, doc_id, rev_id), (seq, body) in found.items():
        out.append((coll, seq, doc_id, rev_id, body or {"type": "test", "made_up": True}))
    return sorted(out, key=lambda x: (x[0], x[1]))


def open_collection(db: Database, full_name: str) -> Collection:
    scope, _, name = full_name.partition(".")
    if full_name == DEFAULT:
        return db.default_collection()
    return db.collection(name, scope) or db.create_collection(name, scope)


def seed_server(db: Database, rec: Recording) -> None:
    """Put the passive's initial documents (and blobs) into `db` with recorded revIDs."""
    from engine.replication.blobs import blob_digests

    for coll_name, _seq, doc_id, rev_id, body in initial_server_docs(rec):
        for digest in blob_digests(body):
            content = rec.blob(digest)
            assert content is not None, f"blob {digest} is not recorded"
            got, _ = db.blob_store.write([content])
            assert got == digest
        open_collection(db, coll_name).insert_revision(doc_id, rev_id, [], body)


def run_server_command(db: Database, rec: Recording, note: dict[str, Any]) -> None:
    """Apply a recorded `serverCommand` to our database, with the recorded revID."""
    verb, doc_id, body = parse_command(note["command"])
    coll = db.default_collection()
    current = coll.get_document(doc_id, include_deleted=True)
    gen = rev_generation(current.rev_id) + 1 if current is not None and current.rev_id else 1
    candidates = [
        r for r in revs_announced_after(rec, note["_index"], doc_id) if rev_generation(r) == gen
    ]
    assert candidates, f"no recorded revision for {note['command']!r}"
    history = [current.rev_id] if current is not None and current.rev_id else []
    coll.insert_revision(doc_id, candidates[0], history, body, verb == "delete")


# -- our passive vs the recorded active peer -----------------------------------------------


@dataclass
class Seen:
    """A request our side sent (as received by the scripted peer)."""

    order: int
    conn: int
    profile: str
    properties: dict[str, str]
    body: bytes
    urgent: bool
    compressed: bool
    no_reply: bool

    @property
    def props(self) -> dict[str, str]:
        return {k: v for k, v in self.properties.items() if k != "Profile"}

    def json(self) -> Any:
        return orjson.loads(self.body) if self.body else None

    @classmethod
    def of(cls, order: int, conn: int, request: IncomingRequest) -> Seen:
        return cls(
            order,
            conn,
            request.profile,
            dict(request.properties),
            request.body,
            request.urgent,
            request.compressed,
            request.no_reply,
        )


@dataclass
class Answer:
    """Our reply to a replayed request."""

    order: int
    request: Msg
    error: BlipError | None
    properties: dict[str, str]
    body: bytes
    flags: int = 0
    done: int = 0


@dataclass
class PassiveResult:
    seen: list[Seen] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class PassiveReplay:
    """Replays the recorded active peer against our passive session (one DB, many conns)."""

    def __init__(self, rec: Recording, db: Database, *, delta_sync: bool = True) -> None:
        self.rec = rec
        self.db = db
        self.delta_sync = delta_sync
        self.result = PassiveResult()
        self.checkpoint_revs: dict[str, str] = {}
        self.recorded_checkpoint_revs: dict[tuple[int, str], str] = {}
        self._order = 0
        self._counts: dict[str, int] = {}
        self._progress = asyncio.Event()
        self._conn_no = 0
        self._hold: dict[int, list[dict[str, Any]]] = {}
        self.sessions: list[ReplicationSession] = []
        self._server_tasks: set[asyncio.Task[None]] = set()

    def _tick(self) -> int:
        self._order += 1
        return self._order

    # which collections our passive serves
    def _served(self) -> list[Collection]:
        names = {DEFAULT}
        for conn in self.rec.conns:
            names.update(self.rec.collection_names(conn) or [])
        return [open_collection(self.db, n) for n in sorted(names)]

    async def run(self) -> PassiveResult:
        served = self._served()

        async def on_connection(conn: BlipConnection) -> None:
            session = ReplicationSession(
                conn,
                self.db,
                active=False,
                collections=served,
                options=SessionOptions(delta_sync=self.delta_sync),
            )
            self.sessions.append(session)

        server = await blip.serve(on_connection, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            for action, obj in self._actions():
                if action == "open":
                    self._conn_no = obj
                    self._counts = {}
                    client = await self._connect(port, obj)
                elif action == "close":
                    await self._wait_for_expected(obj)
                    await client.close(1000, "")
                    # let our passive finish (stores, checkpoint) before the next step
                    for session in self.sessions:
                        await session.close()
                    self.sessions.clear()
                elif action == "command":
                    await self._wait_counts(obj["_before"])
                    await self.db.run(run_server_command, self.db, self.rec, obj)
                else:
                    await self._wait_counts(obj[1])
                    await self._send(client, obj[0])
        finally:
            server.close()
            with contextlib.suppress(Exception):
                await server.wait_closed()
        return self.result

    # -- the script -------------------------------------------------------------------

    def _category(self, m: Msg) -> str | None:
        if m.dir != "s2c" or m.type != "REQ":
            return None
        if m.profile == "changes":
            return "changes" if m.json else None
        # a passive that still has the requested revision may send it instead of norev
        return "rev" if m.profile == "norev" else m.profile

    def _actions(self) -> list[tuple[str, Any]]:
        """open/close conns, c2s requests and server commands, with what must precede them."""
        out: list[tuple[str, Any]] = []
        counts: dict[str, int] = {}
        hold_msg: int | None = None
        current = 0
        msgs = {m.index: m for m in self.rec.messages}
        for line in self.rec.lines:
            kind = line.get("type")
            if kind == "tcpOpen":
                current = line["conn"]
                counts = {}
                if current in self.rec.conns:  # not the ones refused at the HTTP upgrade
                    out.append(("open", current))
            elif kind == "proxyHold":
                hold_msg = line["msgNo"]
                self._hold[hold_msg] = []
            elif kind == "proxyHoldEnd":
                hold_msg = None
            elif kind == "note" and line.get("event") == "serverCommand":
                if hold_msg is not None:
                    self._hold[hold_msg].append(line)
                else:
                    out.append(("command", {**line, "_before": dict(counts)}))
            elif kind == "wsControl" and line.get("name") == "close" and line["dir"] == "c2s":
                out.append(("close", current))
            elif kind == "message":
                m = msgs[line["_index"]]
                cat = self._category(m)
                if cat is not None:
                    counts[cat] = counts.get(cat, 0) + 1
                if m.dir == "c2s" and m.type == "REQ":
                    out.append(("send", (m, dict(counts))))
        return out

    async def _wait_counts(self, wanted: dict[str, int]) -> None:
        async def reached() -> None:
            while any(self._counts.get(k, 0) < v for k, v in wanted.items()):
                self._progress.clear()
                await self._progress.wait()

        try:
            await asyncio.wait_for(reached(), WAIT)
        except TimeoutError:
            self.result.problems.append(
                f"conn {self._conn_no}: timed out waiting for our passive to send {wanted} "
                f"(got {self._counts})"
            )

    async def _wait_for_expected(self, conn: int) -> None:
        total: dict[str, int] = {}
        for m in self.rec.messages:
            cat = self._category(m)
            if m.conn == conn and cat is not None:
                total[cat] = total.get(cat, 0) + 1
        await self._wait_counts(total)
        # the caught-up marker(s): one empty `changes` per subChanges
        markers = len(self.rec.requests("c2s", "subChanges", conn))

        async def marked() -> None:
            while (
                sum(
                    1
                    for s in self.result.seen
                    if s.conn == conn and s.profile == "changes" and s.json() == []
                )
                < markers
            ):
                self._progress.clear()
                await self._progress.wait()

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(marked(), WAIT)
        await asyncio.sleep(0.05)  # any stray message

    # -- the replayed client ----------------------------------------------------------

    async def _connect(self, port: int, conn_no: int) -> BlipConnection:
        headers = {}
        for line in self.rec.lines:
            if line.get("type") == "http" and line.get("conn") == conn_no and line["dir"] == "c2s":
                for name, value in line.get("headers", []):
                    if name.lower() == "authorization":
                        headers["Authorization"] = value
        client = await blip.connect(
            f"ws://127.0.0.1:{port}/db/_blipsync", headers=headers, ping_interval=None
        )
        for profile in ("changes", "rev", "norev", "getAttachment", "proveAttachment"):
            client.register_handler(profile, self._on_request)
        return client

    def _record(self, request: IncomingRequest) -> Seen:
        seen = Seen.of(self._tick(), self._conn_no, request)
        self.result.seen.append(seen)
        cat = request.profile
        if cat == "changes" and not request.body.strip(b"[] \n"):
            cat = ""
        if cat == "norev":
            cat = "rev"
        if cat:
            self._counts[cat] = self._counts.get(cat, 0) + 1
        self._progress.set()
        return seen

    async def _on_request(self, request: IncomingRequest) -> OutgoingReply | None:
        seen = self._record(request)
        if request.profile == "changes":
            return await self._answer_changes(seen, request)
        if request.profile == "getAttachment":
            content = self.rec.blob(request.properties.get("digest", ""))
            if content is None:
                raise BlipError("HTTP", 404, "not recorded")
            return OutgoingReply(body=content, compressed=True)
        if request.profile == "rev":
            return OutgoingReply()
        return None

    async def _answer_changes(self, seen: Seen, request: IncomingRequest) -> OutgoingReply | None:
        entries = seen.json() or []
        if not entries or request.no_reply:
            return None
        # what the real client answered for each (docID, revID) in this conn
        wants: dict[tuple[str, str], Any] = {}
        props: dict[str, str] | None = None
        held: list[dict[str, Any]] = []
        first_props: dict[str, str] | None = None
        for m in self.rec.requests("s2c", "changes", self._conn_no):
            if m.collection != request.properties.get("collection") or not m.json:
                continue
            reply = self.rec.reply_to(m)
            assert reply is not None
            if first_props is None:
                first_props = reply.properties
            items = list(reply.json) + [0] * (len(m.json) - len(reply.json))
            for entry, item in zip(m.json, items, strict=True):
                wants[(entry[1], entry[2])] = item
                if any(e[1] == entry[1] and e[2] == entry[2] for e in entries):
                    props = props or reply.properties
                    held += self._hold.pop(reply.number, [])
        out: list[Any] = []
        for entry in entries:
            key = (entry[1], entry[2])
            if key not in wants:
                self.result.problems.append(
                    f"conn {self._conn_no}: our passive announced {key}, the real one did not"
                )
            out.append(wants.get(key, 0))
        while out and out[-1] == 0:
            out.pop()
        for note in held:  # the proxy held this reply while the server changed a doc
            await self.db.run(run_server_command, self.db, self.rec, note)
        return OutgoingReply(props or first_props or {}, orjson.dumps(out), compressed=True)

    async def _send(self, client: BlipConnection, m: Msg) -> None:
        props = m.props
        if m.profile == "setCheckpoint":
            client_id = props["client"]
            if props.get("rev"):
                props["rev"] = self.checkpoint_revs.get(client_id, props["rev"])
        order = self._tick()
        try:
            reply = await client.send_request(
                m.profile,
                props,
                m.body,
                urgent=m.urgent,
                compressed=m.compressed,
                no_reply=m.no_reply,
            )
        except BlipError as exc:
            if isinstance(exc, blip.ConnectionClosedError):
                self.result.problems.append(f"conn {m.conn}: connection closed during {m.profile}")
                return
            self.result.answers.append(
                Answer(order, m, exc, dict(exc.properties or {}), b"", done=self._tick())
            )
            return
        if reply is None:
            return
        self.result.answers.append(
            Answer(order, m, None, dict(reply.properties), reply.body, reply.flags, self._tick())
        )
        if m.profile == "setCheckpoint" and reply.properties.get("rev"):
            self.checkpoint_revs[props["client"]] = reply.properties["rev"]
            recorded = self.rec.reply_to(m)
            if recorded is not None:
                self.recorded_checkpoint_revs[(m.conn, recorded.properties.get("rev", ""))] = (
                    reply.properties["rev"]
                )


def apply_json_delta(base: bytes, delta: bytes) -> Any:
    return apply_delta(orjson.loads(base), orjson.loads(delta))


# -- our active side vs the recorded passive peer ------------------------------------------


class FakePassive:
    """Answers our Replicator the way the recorded real passive did, recording what we send."""

    def __init__(self, rec: Recording) -> None:
        self.rec = rec
        self.conn_no = 0
        self.seen: list[Seen] = []
        #: (conn, recorded `changes` we sent, our reply's properties, our reply's body)
        self.changes_replies: list[tuple[int, Msg, dict[str, str], Any]] = []
        self.problems: list[str] = []
        self.checkpoints: dict[str, tuple[str, dict[str, Any]]] = {}
        self.docs: dict[tuple[str | None, str], str] = {}
        self._order = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._conn: BlipConnection | None = None
        self._used: set[int] = set()
        self._first_reply: set[str | None] = set()

    def use_conn(self, conn_no: int) -> None:
        """The recorded connection the next connection of our replicator plays."""
        self.conn_no = conn_no
        self._first_reply = set()
        for m in self.rec.requests("s2c", conn=conn_no):
            if m.profile == "changes" and m.json:
                for entry in m.json:
                    self.docs[(m.collection, entry[1])] = entry[2]

    async def serve(self) -> tuple[Any, int]:
        server = await blip.serve(self._on_connection, "127.0.0.1", 0)
        return server, server.sockets[0].getsockname()[1]

    def _on_connection(self, conn: BlipConnection) -> None:
        self._conn = conn
        for profile in (
            "getCheckpoint",
            "getCollections",
            "setCheckpoint",
            "subChanges",
            "proposeChanges",
            "changes",
            "rev",
            "norev",
            "getAttachment",
        ):
            conn.register_handler(profile, self._on_request)

    def _record(self, request: IncomingRequest) -> Seen:
        self._order += 1
        seen = Seen.of(self._order, self.conn_no, request)
        self.seen.append(seen)
        return seen

    def _next_recorded(self, profile: str, collection: str | None, conn: int) -> Msg | None:
        for m in self.rec.requests("c2s", profile, conn):
            if m.index in self._used or m.collection != collection:
                continue
            if profile == "proposeChanges" and not m.json:
                continue
            self._used.add(m.index)
            return m
        return None

    async def _on_request(self, request: IncomingRequest) -> OutgoingReply | None:
        seen = self._record(request)
        handler = getattr(self, "_on_" + request.profile)
        result: OutgoingReply | None = await handler(seen, request)
        return result

    async def _on_getCheckpoint(self, seen: Seen, request: IncomingRequest) -> OutgoingReply:
        found = self.checkpoints.get(request.properties.get("client", ""))
        if found is None:
            raise BlipError("HTTP", 404, "")
        return OutgoingReply({"rev": found[0]}, orjson.dumps(found[1]))

    async def _on_getCollections(self, seen: Seen, request: IncomingRequest) -> OutgoingReply:
        body = orjson.loads(request.body)
        out: list[Any] = []
        for cp_id in body["checkpoint_ids"]:
            found = self.checkpoints.get(cp_id)
            out.append({} if found is None else {**found[1], "rev": found[0]})
        return OutgoingReply(body=orjson.dumps(out))

    async def _on_setCheckpoint(self, seen: Seen, request: IncomingRequest) -> OutgoingReply:
        client = request.properties.get("client", "")
        found = self.checkpoints.get(client)
        if (found[0] if found else "") != request.properties.get("rev", ""):
            self.problems.append(
                f"setCheckpoint rev {request.properties.get('rev')!r}, the peer has "
                f"{found[0] if found else None!r}"
            )
        gen = int(found[0].split("-")[0]) + 1 if found else 1
        rev = f"{gen}-cc"
        self.checkpoints[client] = (rev, orjson.loads(request.body))
        return OutgoingReply({"rev": rev})

    async def _on_subChanges(self, seen: Seen, request: IncomingRequest) -> None:
        collection = request.properties.get("collection")
        task = asyncio.create_task(self._feed(collection, self.conn_no))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return None

    async def _feed(self, collection: str | None, conn_no: int) -> None:
        """Send the recorded `changes` of this collection, then the revs we asked for."""
        await asyncio.sleep(0.01)  # after the subChanges reply
        conn = self._conn
        assert conn is not None
        for m in self.rec.requests("s2c", "changes", conn_no):
            if m.collection != collection:
                continue
            if not m.json:
                await conn.send_request("changes", m.props, m.body, urgent=True, no_reply=True)
                continue
            try:
                reply = await conn.send_request(
                    "changes", m.props, m.body, urgent=True, compressed=True
                )
            except BlipError as exc:
                self.problems.append(f"our replicator failed `changes`: {exc}")
                continue
            assert reply is not None
            self.changes_replies.append(
                (conn_no, m, dict(reply.properties), orjson.loads(reply.body or b"[]"))
            )
            wants = orjson.loads(reply.body or b"[]")
            for i, entry in enumerate(m.json):
                if i < len(wants) and wants[i] != 0 and wants[i] is not None:
                    await self._send_rev(conn, conn_no, collection, entry[1], entry[2])

    async def _send_rev(
        self, conn: BlipConnection, conn_no: int, collection: str | None, doc_id: str, rev: str
    ) -> None:
        for m in self.rec.requests("s2c", None, conn_no):
            if m.profile not in ("rev", "norev") or m.collection != collection:
                continue
            if m.properties.get("id") == doc_id and m.properties.get("rev") == rev:
                if m.profile == "norev":
                    await conn.send_request("norev", m.props, b"", no_reply=True)
                    return
                try:
                    await conn.send_request("rev", m.props, m.body, compressed=True)
                except BlipError as exc:
                    self.problems.append(f"our replicator refused rev {doc_id} {rev}: {exc}")
                return
        self.problems.append(f"no recorded rev {doc_id} {rev} to send")

    async def _on_proposeChanges(
        self, seen: Seen, request: IncomingRequest
    ) -> OutgoingReply | None:
        entries = seen.json() or []
        if not entries:
            return None
        collection = request.properties.get("collection")
        recorded = self._next_recorded("proposeChanges", collection, self.conn_no)
        if recorded is not None and [e[0] for e in recorded.json] == [e[0] for e in entries]:
            reply = self.rec.reply_to(recorded)
            assert reply is not None
            return OutgoingReply(reply.properties, reply.body)
        # not in this recorded connection: answer by the rules the real passive follows
        verdicts: list[Any] = []
        for doc_id, rev, server_rev, *_ in entries:
            current = self.docs.get((collection, doc_id))
            if current is None or current == server_rev:
                verdicts.append(0)
            elif current == rev:
                verdicts.append(304)
            else:
                verdicts.append({"status": 409, "rev": current})
        while verdicts and verdicts[-1] == 0:
            verdicts.pop()
        props = {"maxHistory": "50", "blobs": "true"}
        if collection not in self._first_reply:
            props["deltas"] = "true"
        self._first_reply.add(collection)
        return OutgoingReply(props, orjson.dumps(verdicts))

    async def _on_changes(self, seen: Seen, request: IncomingRequest) -> None:
        # A real Couchbase Lite passive peer refuses `changes` (it wants proposeChanges)
        raise BlipError("HTTP", 409, "use proposeChanges")

    async def _on_rev(self, seen: Seen, request: IncomingRequest) -> None:
        props = request.properties
        key = (props.get("collection"), props.get("id", ""))
        current = self.docs.get(key)
        history = [h.strip() for h in props.get("history", "").split(",") if h.strip()]
        conflicting = current is not None and current not in history
        if props.get("noconflicts") in ("1", "true") and conflicting and current != props["rev"]:
            raise BlipError("HTTP", 409, "conflict")
        self.docs[key] = props.get("rev", "")
        return None

    async def _on_norev(self, seen: Seen, request: IncomingRequest) -> None:
        return None

    async def _on_getAttachment(self, seen: Seen, request: IncomingRequest) -> OutgoingReply:
        content = self.rec.blob(request.properties.get("digest", ""))
        if content is None:
            raise BlipError("HTTP", 404, "not recorded")
        return OutgoingReply(body=content)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
