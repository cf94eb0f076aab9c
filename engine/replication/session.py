"""One replication connection, active or passive: collections, modes, message handlers.

The same handlers serve both roles (the protocol is symmetric); the passive peer also
answers `getCheckpoint`, `setCheckpoint`, `getCollections` and `subChanges`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from engine.blip import BlipConnection, BlipError, IncomingRequest, OutgoingReply
from engine.errors import ConflictError, PeerbaseError
from engine.replication.blobs import prove_attachment, serve_blob
from engine.replication.config import CollectionConfiguration
from engine.replication.messages import flag
from engine.replication.receiver import Receiver
from engine.replication.revbatch import PROFILE as REVS_PROFILE
from engine.replication.revbatch import REQUEST_PROPERTY as REVS_PROPERTY
from engine.replication.revbatch import SERVER_FEATURE
from engine.replication.sender import Sender
from engine.replication.status import ReplicatedDocument, ReplicationStatistics
from engine.store import Collection, Database, split_full_name

__all__ = ["CollectionContext", "Mode", "ReplicationSession", "SessionEvents", "SessionOptions"]

log = logging.getLogger(__name__)

MARK_FLUSH_INTERVAL = 0.25
#: `subChanges` property of a Peerbase client: do not offer me revisions I am known to
#: hold (those I pushed, or was sent, on earlier connections).
SKIP_KNOWN_PROPERTY = "skipKnownRevs"


class Mode(enum.Enum):
    """Legacy (default collection, `getCheckpoint` first) or collection-aware."""

    UNDECIDED = 0
    LEGACY = 1
    COLLECTIONS = 2


@dataclass
class SessionOptions:
    read_only: bool = False
    delta_sync: bool = False
    #: Refuse `changes` with 409 and take only `proposeChanges`, as a Couchbase Lite
    #: listener does: the pusher must resolve conflicts before pushing.
    conflict_free: bool = False
    #: Exchange plain revisions in `revs` batches with Peerbase peers that ask for them
    #: (announced in the `Server` header; see `revbatch`).
    rev_batches: bool = True


def server_header(options: SessionOptions) -> str:
    """The `Server` header of a passive peer with these options."""
    features = ["accepts-branches"] + ([SERVER_FEATURE] if options.rev_batches else [])
    return f"Peerbase/0.1 (BLIP_3+CBMobile_3; {'; '.join(features)})"


#: `Server` header of a Peerbase passive peer's WebSocket upgrade response, listing what
#: it accepts beyond the standard: conflicting branches through `changes` (which lets
#: peers converge on the same revision trees) and `revs` batches. Anything else (Couchbase
#: Lite) gets `proposeChanges` and one `rev` per revision.
SERVER_HEADER = server_header(SessionOptions())


def _server_features(header: str | None) -> list[str]:
    return re.split(r"[;()\s]+", header) if header else []


def peer_accepts_branches(header: str | None) -> bool:
    return "accepts-branches" in _server_features(header)


def peer_takes_rev_batches(header: str | None) -> bool:
    """Does a passive peer with this `Server` header take `revs` messages?"""
    return SERVER_FEATURE in _server_features(header)


class SessionEvents:
    """Where a session reports progress; the replicator and the listener override it."""

    def add_total(self, n: int) -> None:
        """More work discovered."""

    def add_completed(self, n: int) -> None:
        """Work finished."""

    @property
    def wants_documents(self) -> bool:
        """Does anyone listen to `document`? (Else no event is built per document.)"""
        return False

    def document(self, is_push: bool, doc: ReplicatedDocument) -> None:
        """One document pushed or pulled (or failed)."""

    def idle_check(self, session: ReplicationSession) -> None:
        """Something finished: the owner may want to re-evaluate busy/idle."""


@dataclass(eq=False)
class CollectionContext:
    """A collection as seen by one session (its wire index, filters, workers)."""

    collection: Collection
    wire_index: int | None
    config: CollectionConfiguration = field(default_factory=CollectionConfiguration)
    pull_since: Any = None
    receiver: Receiver | None = None
    sender: Sender | None = None
    sender_task: asyncio.Task[None] | None = None
    #: Revisions the peer acknowledged, not yet recorded in the database.
    marks: dict[str, str] = field(default_factory=dict)
    #: The peer's remote ID in the store, for marking which revisions it holds: the
    #: replicator's peer, or a passive side's client (known by its checkpoint ID).
    remote_id: int | None = None

    @property
    def push_filter(self) -> Any:
        return self.config.push_filter

    @property
    def pull_filter(self) -> Any:
        return self.config.pull_filter

    @property
    def conflict_resolver(self) -> Any:
        return self.config.conflict_resolver

    def collection_property(self) -> dict[str, str]:
        return {} if self.wire_index is None else {"collection": str(self.wire_index)}


Handler = Callable[[IncomingRequest], Awaitable[OutgoingReply | None]]


class ReplicationSession:
    """Replication state of one BLIP connection."""

    def __init__(
        self,
        conn: BlipConnection,
        db: Database,
        *,
        active: bool,
        collections: Sequence[Collection],
        options: SessionOptions | None = None,
        events: SessionEvents | None = None,
        remote_id: int | None = None,
        configs: dict[Collection, CollectionConfiguration] | None = None,
        mode: Mode = Mode.UNDECIDED,
    ) -> None:
        self.conn = conn
        self.db = db
        self.active = active
        self.options = options or SessionOptions()
        self.events = events or SessionEvents()
        self.remote_id = remote_id
        self.stats = ReplicationStatistics()
        self.mode = mode
        #: The peer only takes `proposeChanges` (Couchbase Lite, or it refused `changes`).
        self.peer_conflict_free = True
        #: The peer takes `revs` batches (a Peerbase peer that announced or asked for them).
        self.peer_rev_batches = False
        self.served = {c.full_name: c for c in collections}
        self.contexts: list[CollectionContext | None] = []
        self.error: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
        self._flusher: asyncio.Task[None] | None = None
        self._background: set[asyncio.Future[None]] = set()
        if active:
            legacy = mode is Mode.LEGACY
            for index, coll in enumerate(collections):
                cfg = (configs or {}).get(coll) or CollectionConfiguration()
                self.contexts.append(self._new_context(coll, None if legacy else index, cfg))
        self._register()

    def _new_context(
        self,
        coll: Collection,
        wire_index: int | None,
        config: CollectionConfiguration | None = None,
    ) -> CollectionContext:
        ctx = CollectionContext(
            coll, wire_index, config or CollectionConfiguration(), remote_id=self.remote_id
        )
        ctx.receiver = Receiver(self, ctx)
        return ctx

    async def _identify_client(self, ctx: CollectionContext, checkpoint_id: str) -> None:
        """Passive: mark revisions as held by the client with this checkpoint ID.

        Revisions it pushes are then not offered back to it; nor are those it was sent.
        """
        if not checkpoint_id or ctx.remote_id is not None:
            return
        ctx.remote_id = await self.db.run(self.db.remote_id, f"peer-client/{checkpoint_id}")
        assert ctx.receiver is not None
        ctx.receiver.inserter.remote_id = ctx.remote_id

    # -- plumbing -------------------------------------------------------------------------

    def _register(self) -> None:
        handlers: dict[str, Handler] = {
            "changes": self._on_changes,
            "proposeChanges": self._on_propose,
            "rev": self._on_rev,
            REVS_PROFILE: self._on_revs,
            "norev": self._on_norev,
            "getAttachment": self._on_get_attachment,
            "proveAttachment": self._on_prove_attachment,
        }
        if not self.active:
            handlers.update(
                {
                    "getCheckpoint": self._on_get_checkpoint,
                    "setCheckpoint": self._on_set_checkpoint,
                    "getCollections": self._on_get_collections,
                    "subChanges": self._on_sub_changes,
                }
            )
        for profile, handler in handlers.items():
            self.conn.register_handler(profile, handler)

    def fail(self, exc: BaseException) -> None:
        """A worker failed in a way that ends the replication."""
        if not self.error.done():
            log.debug("replication session failed: %r", exc)
            self.error.set_result(exc)

    def check_idle(self) -> None:
        self.events.idle_check(self)

    @property
    def busy(self) -> bool:
        """Any replication work in progress on this connection?"""
        for ctx in self.contexts:
            if ctx is None:
                continue
            if ctx.sender is not None and not ctx.sender.idle:
                return True
            if ctx.receiver is not None and ctx.receiver.inserter.busy:
                return True
        return False

    def remote_has(self, ctx: CollectionContext, doc_id: str, rev_id: str) -> None:
        """Remember (in batches) that the peer now has this revision."""
        self.remote_has_many(ctx, ((doc_id, rev_id),))

    def remote_has_many(
        self, ctx: CollectionContext, revisions: Iterable[tuple[str, str]]
    ) -> None:
        """Remember (in batches) that the peer now has these (docID, revID)s."""
        if ctx.remote_id is None:
            return
        if not self.active and not self.options.delta_sync:
            # What a passive peer sends lies past the client's checkpoint, which the client
            # moves past it: a record of it would only spare announcing it again after a lost
            # checkpoint, for a row rewrite per document (a quarter of a pull's work here).
            # With delta sync it is kept: the revisions a client holds are delta sources.
            # (What a client pushes is recorded as it is stored, at no extra cost.)
            return
        ctx.marks.update(revisions)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_marks_later())

    async def _flush_marks_later(self) -> None:
        await asyncio.sleep(MARK_FLUSH_INTERVAL)
        await self.flush_marks()

    async def flush_marks(self) -> None:
        for ctx in self.contexts:
            if ctx is not None and ctx.marks and ctx.remote_id is not None:
                marks, ctx.marks = ctx.marks, {}
                await self.db.run(
                    ctx.collection.mark_remote_revisions, ctx.remote_id, list(marks.items())
                )

    async def close(self) -> None:
        """Stop this session's workers (the connection itself is closed by the owner)."""
        for ctx in self.contexts:
            if ctx is None:
                continue
            if ctx.sender_task is not None:
                ctx.sender_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await ctx.sender_task
            if ctx.receiver is not None:
                await ctx.receiver.inserter.close()
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        with contextlib.suppress(PeerbaseError):
            await self.flush_marks()

    # -- collection resolution ------------------------------------------------------------

    def context_for(self, request: IncomingRequest) -> CollectionContext:
        """The collection a request is about, enforcing the legacy/collection-aware mode."""
        index = request.properties.get("collection")
        if self.mode is Mode.UNDECIDED:
            self.mode = Mode.LEGACY
        if self.mode is Mode.LEGACY:
            if index is not None:
                raise BlipError(
                    "HTTP",
                    400,
                    "a legacy connection must not send 'collection' "
                    "(send getCollections first to replicate named collections)",
                )
            return self._legacy_context()
        if index is None:
            raise BlipError(
                "HTTP",
                400,
                f"{request.profile} lacks the 'collection' property required after getCollections",
            )
        try:
            ctx = self.contexts[int(index)]
        except (ValueError, IndexError):
            raise BlipError("HTTP", 400, f"no collection with index {index!r}") from None
        if ctx is None:
            raise BlipError("HTTP", 404, f"collection index {index} is not served here")
        return ctx

    def _legacy_context(self) -> CollectionContext:
        if not self.contexts:
            coll = self.served.get("_default._default")
            if coll is None:
                raise BlipError(
                    "HTTP", 404, "the default collection is not served here; use getCollections"
                )
            self.contexts.append(self._new_context(coll, None))
        ctx = self.contexts[0]
        assert ctx is not None
        return ctx

    # -- handlers of both roles -----------------------------------------------------------

    async def _on_changes(self, request: IncomingRequest) -> OutgoingReply | None:
        receiver = self.context_for(request).receiver
        assert receiver is not None
        return await receiver.on_changes(request)

    async def _on_propose(self, request: IncomingRequest) -> OutgoingReply | None:
        receiver = self.context_for(request).receiver
        assert receiver is not None
        return await receiver.on_propose(request)

    async def _on_rev(self, request: IncomingRequest) -> OutgoingReply | None:
        receiver = self.context_for(request).receiver
        assert receiver is not None
        return await receiver.on_rev(request)

    async def _on_revs(self, request: IncomingRequest) -> OutgoingReply | None:
        receiver = self.context_for(request).receiver
        assert receiver is not None
        return await receiver.on_revs(request)

    async def _on_norev(self, request: IncomingRequest) -> OutgoingReply | None:
        receiver = self.context_for(request).receiver
        assert receiver is not None
        await receiver.on_norev(request)
        return None

    async def _on_get_attachment(self, request: IncomingRequest) -> OutgoingReply | None:
        self.context_for(request)
        reply = serve_blob(self.db, request)
        self.stats.bytes_pushed += self.db.blob_store.length(request.properties["digest"])
        return reply

    async def _on_prove_attachment(self, request: IncomingRequest) -> OutgoingReply | None:
        self.context_for(request)
        return await self.db.run(prove_attachment, self.db, request)

    # -- passive-only handlers ------------------------------------------------------------

    def _checkpoint_key(self, request: IncomingRequest) -> str:
        client = request.properties.get("client", "")
        if not client:
            raise BlipError("HTTP", 400, "missing 'client' property")
        return f"peer-checkpoint/{client}"

    async def _on_get_checkpoint(self, request: IncomingRequest) -> OutgoingReply | None:
        ctx = self.context_for(request)
        key = self._checkpoint_key(request)
        await self._identify_client(ctx, request.properties.get("client", ""))
        found = await self.db.run(self.db.get_local, key)
        if found is None:
            raise BlipError("HTTP", 404, "")
        rev, body = found
        return OutgoingReply({"rev": rev}, orjson.dumps(body))

    async def _on_set_checkpoint(self, request: IncomingRequest) -> OutgoingReply | None:
        self.context_for(request)
        try:
            body = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            raise BlipError("HTTP", 400, "setCheckpoint body must be a JSON object")
        try:
            rev = await self.db.run(
                self.db.put_local,
                self._checkpoint_key(request),
                body,
                request.properties.get("rev") or None,
            )
        except ConflictError as exc:
            raise BlipError("HTTP", 409, str(exc)) from None
        return OutgoingReply({"rev": rev})

    async def _on_get_collections(self, request: IncomingRequest) -> OutgoingReply | None:
        if self.mode is Mode.LEGACY:
            raise BlipError("HTTP", 400, "getCollections after legacy messages")
        self.mode = Mode.COLLECTIONS
        try:
            data = orjson.loads(request.body)
            names = data["collections"]
            ids = data["checkpoint_ids"]
            assert isinstance(names, list) and isinstance(ids, list) and len(names) == len(ids)
        except Exception:
            raise BlipError(
                "HTTP",
                400,
                "getCollections needs equal-length arrays 'collections' and 'checkpoint_ids'",
            ) from None
        self.contexts = []
        out: list[Any] = []
        for index, (name, cp_id) in enumerate(zip(names, ids, strict=True)):
            coll = None
            with contextlib.suppress(Exception):
                coll = self.served.get(".".join(split_full_name(str(name))))
            if coll is None:
                self.contexts.append(None)
                out.append(None)
                continue
            ctx = self._new_context(coll, index)
            self.contexts.append(ctx)
            await self._identify_client(ctx, str(cp_id))
            found = await self.db.run(self.db.get_local, f"peer-checkpoint/{cp_id}")
            out.append({} if found is None else {**found[1], "rev": found[0]})
        return OutgoingReply(body=orjson.dumps(out))

    async def _on_sub_changes(self, request: IncomingRequest) -> OutgoingReply | None:
        ctx = self.context_for(request)
        props = request.properties
        versioning = props.get("versioning", "rev-trees")
        if versioning != "rev-trees":
            asyncio.get_running_loop().call_later(
                0.5, self._close_soon, 1008, "unsupported versioning"
            )
            raise BlipError(
                "HTTP",
                501,
                f"versioning {versioning!r} is not supported; this peer uses revision trees",
            )
        since = _parse_since(props.get("since"))
        doc_ids = None
        if request.body:
            try:
                data = orjson.loads(request.body)
            except orjson.JSONDecodeError:
                data = None
            if not isinstance(data, dict):
                raise BlipError("HTTP", 400, "subChanges body must be a JSON object")
            ids = data.get("docIDs")
            if ids is not None:
                if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                    raise BlipError("HTTP", 400, "docIDs must be an array of strings")
                doc_ids = ids
        try:
            batch = int(props.get("batch", "200"))
        except ValueError:
            batch = 200
        if ctx.sender_task is not None:
            ctx.sender_task.cancel()
        self.peer_rev_batches = self.options.rev_batches and flag(props, REVS_PROPERTY)
        ctx.sender = Sender(
            self,
            ctx,
            since=since,
            continuous=flag(props, "continuous"),
            batch_size=batch,
            propose=False,
            active_only=flag(props, "activeOnly"),
            doc_ids=doc_ids,
            skip_known=flag(props, SKIP_KNOWN_PROPERTY),
        )
        ctx.sender_task = asyncio.create_task(
            self._run_sender(ctx.sender), name=f"subChanges {ctx.collection.full_name}"
        )
        return None

    async def _run_sender(self, sender: Sender) -> None:
        try:
            await sender.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.fail(exc)

    def _close_soon(self, code: int, reason: str) -> None:
        task = asyncio.ensure_future(self.conn.close(code, reason))
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _parse_since(value: str | None) -> int:
    if not value:
        return 0
    try:
        since = orjson.loads(value)
    except orjson.JSONDecodeError:
        since = value
    if isinstance(since, str) and since.isdigit():
        since = int(since)
    return since if isinstance(since, int) and since >= 0 else 0
