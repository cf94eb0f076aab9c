"""The active peer: `Replicator`, shaped like Couchbase Lite's."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from engine import blip
from engine.blip import BlipConnection, BlipError
from engine.errors import PeerbaseError
from engine.replication.backoff import retry_delay
from engine.replication.checkpoint import (
    checkpoint_id,
    local_checkpoint_key,
    merge_checkpoints,
)
from engine.replication.classify import classify
from engine.replication.config import (
    BasicAuthenticator,
    ClientCertificateAuthenticator,
    CollectionConfiguration,
    ReplicatorConfiguration,
)
from engine.replication.errors import ProtocolError, RemoteNotFoundError
from engine.replication.listeners import ListenerSet
from engine.replication.receiver import resolve_stored_conflicts
from engine.replication.revbatch import REQUEST_PROPERTY as REVS_PROPERTY
from engine.replication.sender import Sender
from engine.replication.session import (
    SKIP_KNOWN_PROPERTY,
    CollectionContext,
    Mode,
    ReplicationSession,
    SessionEvents,
    SessionOptions,
    peer_accepts_branches,
    peer_takes_rev_batches,
)
from engine.replication.status import (
    TRANSITIONS,
    ActivityLevel,
    DocumentReplication,
    Progress,
    ReplicatedDocument,
    ReplicationStatistics,
    ReplicatorStatus,
)
from engine.store import Collection, ListenerToken

__all__ = ["Replicator"]

log = logging.getLogger(__name__)

CHECKPOINT_INTERVAL = 5.0
#: Changes per `changes` message asked of the passive peer (a maximum). Couchbase Lite
#: asks 200, and so do we of it; a Peerbase peer is asked for 1000: fewer round trips when
#: most changes are already known (a no-op sync of 100k docs: 4.6 s -> 1.3 s).
PULL_BATCH = 200
PEERBASE_PULL_BATCH = 1000
#: Changes offered per `changes` message when pushing: Couchbase Lite's 200, or 500 to a
#: Peerbase peer (it takes `revs` batches): fewer, larger exchanges keep both sides busier.
PUSH_BATCH = 200
PEERBASE_PUSH_BATCH = 500
OPEN_TIMEOUT = 15.0


@dataclass
class _Checkpoint:
    """Checkpoint bookkeeping of one collection during one connection."""

    ctx: CollectionContext
    cp_id: str
    remote_rev: str | None = None
    local: int = 0
    remote: Any = None
    saved: dict[str, Any] | None = None
    #: Started with reset_checkpoint: everything is pulled again, even what we hold.
    reset: bool = False


class _Events(SessionEvents):
    def __init__(self, replicator: Replicator) -> None:
        self.r = replicator

    def add_total(self, n: int) -> None:
        if n:
            self.r._total += n
            self.r._mark_busy()

    def add_completed(self, n: int) -> None:
        self.r._completed = min(self.r._total, self.r._completed + n)
        if n:  # this connection does useful work: a later drop restarts the backoff
            self.r._progressed = True
        self.r._schedule_status()

    @property
    def wants_documents(self) -> bool:
        return bool(self.r._doc_listeners)

    def document(self, is_push: bool, doc: ReplicatedDocument) -> None:
        self.r._queue_document(is_push, doc)

    def idle_check(self, session: ReplicationSession) -> None:
        self.r._idle_check.set()


class Replicator:
    """Replicates the configured collections with one passive peer."""

    def __init__(self, config: ReplicatorConfiguration) -> None:
        self.config = config
        self.db = config.database
        self._activity = ActivityLevel.STOPPED
        self._error: PeerbaseError | None = None
        self._total = 0
        self._completed = 0
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._idle_check = asyncio.Event()
        self._status_listeners = ListenerSet()
        self._doc_listeners = ListenerSet()
        self._status_scheduled = False
        self._doc_queue: dict[bool, list[ReplicatedDocument]] = {True: [], False: []}
        self._doc_scheduled = False
        self._session: ReplicationSession | None = None
        self._conn: BlipConnection | None = None
        self.statistics = ReplicationStatistics()
        self.server_certificate: bytes | None = None
        self._events = _Events(self)
        self._progressed = False
        self._resolving: asyncio.Task[None] | None = None

    # -- public API -----------------------------------------------------------------------

    @property
    def status(self) -> ReplicatorStatus:
        return ReplicatorStatus(self._activity, Progress(self._completed, self._total), self._error)

    def start(self, reset_checkpoint: bool = False) -> None:
        """Start replicating (in the background, on the running event loop)."""
        if self._task is not None and not self._task.done():
            return
        self._stop = asyncio.Event()
        self._error = None
        self._total = self._completed = 0
        self._task = asyncio.get_running_loop().create_task(
            self._run(reset_checkpoint), name=f"replicator {self.config.target.url}"
        )

    def stop(self) -> None:
        """Ask the replicator to stop; it saves its checkpoint and closes the connection."""
        self._stop.set()
        self._idle_check.set()

    async def wait_stopped(self, timeout: float | None = None) -> ReplicatorStatus:
        """Wait until the replicator has stopped; returns the final status."""
        if self._task is not None:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        await self._status_listeners.drain()
        await self._doc_listeners.drain()
        return self.status

    def add_change_listener(self, callback: Any) -> ListenerToken:
        """`callback(ReplicatorStatus)` on every status change (sync or async)."""
        return self._status_listeners.add(callback)

    def add_document_replication_listener(self, callback: Any) -> ListenerToken:
        """`callback(DocumentReplication)` for batches of pushed/pulled documents."""
        return self._doc_listeners.add(callback)

    async def pending_document_ids(self, collection: Collection | None = None) -> set[str]:
        """IDs of documents with local changes not yet pushed."""
        coll = collection or next(iter(self.config.collection_configs))
        pending: set[str] = await self.db.run(self._pending_ids, coll)
        return pending

    async def is_document_pending(self, doc_id: str, collection: Collection | None = None) -> bool:
        return doc_id in await self.pending_document_ids(collection)

    # -- status ---------------------------------------------------------------------------

    def _set_activity(self, level: ActivityLevel, error: PeerbaseError | None = None) -> None:
        if level != self._activity:
            if level not in TRANSITIONS[self._activity]:
                raise AssertionError(f"bad replicator transition {self._activity!r} -> {level!r}")
            log.debug(
                "replicator %s: %s -> %s", self.config.target.url, self._activity.name, level.name
            )
            self._activity = level
        if error is not None:
            self._error = error
        self._emit_status()

    def _schedule_status(self) -> None:
        if not self._status_scheduled:
            self._status_scheduled = True
            asyncio.get_running_loop().call_soon(self._emit_status)

    def _emit_status(self) -> None:
        self._status_scheduled = False
        self._status_listeners.emit(self.status)

    def _mark_busy(self) -> None:
        if self._activity is ActivityLevel.IDLE:
            self._set_activity(ActivityLevel.BUSY)
        else:
            self._schedule_status()

    def _queue_document(self, is_push: bool, doc: ReplicatedDocument) -> None:
        if not self._doc_listeners:
            return
        self._doc_queue[is_push].append(doc)
        if not self._doc_scheduled:
            self._doc_scheduled = True
            asyncio.get_running_loop().call_soon(self._emit_documents)

    def _emit_documents(self) -> None:
        self._doc_scheduled = False
        for is_push in (True, False):
            docs, self._doc_queue[is_push] = self._doc_queue[is_push], []
            if docs:
                self._doc_listeners.emit(DocumentReplication(self, is_push, tuple(docs)))

    # -- the run loop ---------------------------------------------------------------------

    async def _run(self, reset: bool) -> None:
        attempt = 0
        try:
            while not self._stop.is_set():
                self._set_activity(ActivityLevel.CONNECTING)
                try:
                    await self._attempt(reset)
                    self._set_activity(ActivityLevel.STOPPED)
                    return
                except Exception as exc:
                    error = classify(exc)
                    log.info("replication with %s failed: %s", self.config.target.url, error)
                if self._stop.is_set():
                    break
                if self._progressed:
                    attempt = 0
                attempt += 1
                limit = self.config.effective_max_attempts
                if not error.transient or (limit is not None and attempt >= limit):
                    self._set_activity(ActivityLevel.STOPPED, error)
                    return
                self._error = error
                self._set_activity(ActivityLevel.OFFLINE)
                delay = retry_delay(attempt, self.config.max_attempt_wait_time)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
            self._set_activity(ActivityLevel.STOPPED)
        except asyncio.CancelledError:
            if self._activity is not ActivityLevel.STOPPED:
                self._set_activity(ActivityLevel.STOPPED)
            raise
        finally:
            self._emit_documents()

    async def _connect(self) -> BlipConnection:
        cfg = self.config
        headers = dict(cfg.headers)
        identity = None
        if isinstance(cfg.authenticator, BasicAuthenticator):
            headers["Authorization"] = cfg.authenticator.header()
        elif isinstance(cfg.authenticator, ClientCertificateAuthenticator):
            identity = cfg.authenticator.identity
        ssl_context = None
        if cfg.target.tls:
            from engine.tls import client_ssl_context

            ssl_context = client_ssl_context(
                pinned_certificate=cfg.pinned_server_certificate,
                accept_only_self_signed=cfg.accept_only_self_signed_server_certificate,
                trusted_roots=list(cfg.trusted_root_certificates)
                if cfg.trusted_root_certificates
                else None,
                client_identity=identity,
            )
        conn = await blip.connect(
            cfg.target.blipsync_url,
            ssl=ssl_context,
            headers=headers,
            open_timeout=OPEN_TIMEOUT,
            ping_interval=cfg.heartbeat,
            # A peer that misses a pong for a heartbeat is gone: do not wait websockets'
            # 20 s ping timeout, nor 10 s for a closing handshake it will never answer.
            ping_timeout=min(cfg.heartbeat, 20.0),
            close_timeout=min(cfg.heartbeat, 10.0),
        )
        ssl_object = conn.websocket.transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self.server_certificate = ssl_object.getpeercert(binary_form=True)
        return conn

    def _remote_key(self) -> str:
        """The peer's identity: its certificate if it has one, else its URL."""
        if self.server_certificate:
            return "cert:" + hashlib.sha256(self.server_certificate).hexdigest()
        return self._url_key()

    def _url_key(self) -> str:
        return "url:" + self.config.target.url.rstrip("/")

    async def _attempt(self, reset: bool) -> None:
        self._progressed = False
        self._total = self._completed  # work left unfinished is rediscovered
        conn = await self._connect()
        self._conn = conn
        session: ReplicationSession | None = None
        tasks: list[asyncio.Task[None]] = []
        try:
            remote_key = self._remote_key()
            await self.db.run(
                self.db.put_local,
                f"replicator-peer/{self.config.target.url}",
                {"key": remote_key},
                await self._local_rev(f"replicator-peer/{self.config.target.url}"),
            )
            remote_id = await self.db.run(self.db.remote_id, remote_key)
            configs = self.config.collection_configs
            named = any(c.full_name != "_default._default" for c in configs)
            session = ReplicationSession(
                conn,
                self.db,
                active=True,
                collections=list(configs),
                options=SessionOptions(delta_sync=self.config.enable_delta_sync),
                events=self._events,
                remote_id=remote_id,
                configs=configs,
                mode=Mode.COLLECTIONS if named else Mode.LEGACY,
            )
            response = getattr(conn.websocket, "response", None)
            server = response.headers.get("Server") if response is not None else None
            session.peer_conflict_free = not peer_accepts_branches(server)
            session.peer_rev_batches = peer_takes_rev_batches(server)
            self._session = session
            checkpoints = [
                _Checkpoint(
                    ctx,
                    checkpoint_id(
                        self.db.uuid,
                        remote_key,
                        ctx.collection.full_name,
                        _options_signature(ctx.config),
                    ),
                )
                for ctx in session.contexts
                if ctx is not None
            ]
            await self._fetch_checkpoints(session, checkpoints, reset)
            tasks = await self._begin(session, checkpoints)
            saver = asyncio.create_task(self._checkpoint_loop(session, checkpoints))
            tasks.append(saver)
            try:
                await self._wait_done(session, tasks[:-1])
            finally:
                saver.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await saver
            await session.flush_marks()
            await self._save_checkpoints(session, checkpoints)
        finally:
            if self._resolving is not None:
                self._resolving.cancel()
            for task in tasks:
                task.cancel()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.gather(*tasks, return_exceptions=True)
            if session is not None:
                await session.close()
                self._merge_stats(session)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(1000, ""), 5)
            self._conn = None
            self._session = None

    async def _local_rev(self, key: str) -> str | None:
        found = await self.db.run(self.db.get_local, key)
        return None if found is None else found[0]

    def _merge_stats(self, session: ReplicationSession) -> None:
        for name in (
            "docs_pushed",
            "docs_pulled",
            "bytes_pushed",
            "bytes_pulled",
            "deltas_sent",
            "deltas_received",
            "delta_bytes_saved",
            "conflicts_resolved",
            "errors",
        ):
            setattr(
                self.statistics, name, getattr(self.statistics, name) + getattr(session.stats, name)
            )
        session.stats = ReplicationStatistics()

    # -- checkpoints ----------------------------------------------------------------------

    async def _fetch_checkpoints(
        self, session: ReplicationSession, checkpoints: list[_Checkpoint], reset: bool
    ) -> None:
        remote: list[dict[str, Any] | None] = []
        if session.mode is Mode.COLLECTIONS:
            body = {
                "collections": [cp.ctx.collection.full_name for cp in checkpoints],
                "checkpoint_ids": [cp.cp_id for cp in checkpoints],
            }
            reply = await session.conn.send_request("getCollections", None, _json(body))
            assert reply is not None
            entries = reply.json()
            if not isinstance(entries, list) or len(entries) != len(checkpoints):
                raise ProtocolError("getCollections reply does not match the request")
            for cp, entry in zip(checkpoints, entries, strict=True):
                if entry is None:
                    raise RemoteNotFoundError(
                        f"the peer has no collection {cp.ctx.collection.full_name}"
                    )
                remote.append(entry or None)
        else:
            for cp in checkpoints:
                try:
                    reply = await session.conn.send_request("getCheckpoint", {"client": cp.cp_id})
                except BlipError as exc:
                    if exc.code != 404:
                        raise
                    remote.append(None)
                    continue
                assert reply is not None
                data = reply.json() if reply.body else {}
                remote.append(
                    {**(data if isinstance(data, dict) else {}), "rev": reply.properties.get("rev")}
                )
        for cp, theirs in zip(checkpoints, remote, strict=True):
            if theirs is not None:
                cp.remote_rev = theirs.pop("rev", None) or None
            found = await self.db.run(self.db.get_local, local_checkpoint_key(cp.cp_id))
            mine = None if found is None or reset else found[1]
            merged = merge_checkpoints(mine, None if reset else theirs)
            cp.local = int(merged.get("local", 0) or 0)
            cp.remote = merged.get("remote")
            cp.saved = dict(merged)
            cp.ctx.pull_since = cp.remote
            cp.reset = reset

    async def _begin(
        self, session: ReplicationSession, checkpoints: list[_Checkpoint]
    ) -> list[asyncio.Task[None]]:
        cfg = self.config
        tasks: list[asyncio.Task[None]] = []
        self._pull_done = asyncio.Event()
        self._resolving = None
        if not cfg.replicator_type.pull:
            self._pull_done.set()
        for cp in checkpoints:
            ctx = cp.ctx
            assert ctx.receiver is not None
            ctx.receiver.tracker.safe = cp.remote
            if cfg.replicator_type.pull:
                await self._subscribe(session, cp)
            else:
                ctx.receiver.caught_up = True
        for cp in checkpoints:
            ctx = cp.ctx
            if cfg.replicator_type.push:
                ctx.sender = Sender(
                    session,
                    ctx,
                    since=cp.local,
                    continuous=cfg.continuous,
                    propose=False,
                    doc_ids=ctx.config.document_ids,
                    batch_size=PEERBASE_PUSH_BATCH if session.peer_rev_batches else PUSH_BATCH,
                )
                if cfg.replicator_type.pull and not cfg.continuous:
                    ctx.sender.hold_until(self._pull_done)
                tasks.append(
                    asyncio.create_task(ctx.sender.run(), name=f"push {ctx.collection.full_name}")
                )
        return tasks

    async def _subscribe(self, session: ReplicationSession, cp: _Checkpoint) -> None:
        props = {
            **cp.ctx.collection_property(),
            "batch": str(PULL_BATCH if session.peer_conflict_free else PEERBASE_PULL_BATCH),
            "versioning": "rev-trees",
        }
        if session.peer_rev_batches:
            props[REVS_PROPERTY] = "true"
        if not session.peer_conflict_free and not cp.reset:
            # A Peerbase peer knows which revisions we hold; after a reset we want them
            # all again (we may have purged some).
            props[SKIP_KNOWN_PROPERTY] = "true"
        if cp.remote is not None:
            props["since"] = _json(cp.remote).decode()
        if self.config.continuous:
            props["continuous"] = "true"
        # Tombstones are useless only to a collection that never held anything (a
        # tombstone-only collection must still learn the peer's other deletions).
        if cp.remote is None and await self.db.run(lambda: cp.ctx.collection.last_sequence) == 0:
            props["activeOnly"] = "true"
        body = b""
        if cp.ctx.config.document_ids:
            body = _json({"docIDs": list(cp.ctx.config.document_ids)})
        await session.conn.send_request("subChanges", props, body)

    async def _checkpoint_loop(
        self, session: ReplicationSession, checkpoints: list[_Checkpoint]
    ) -> None:
        while True:
            await asyncio.sleep(CHECKPOINT_INTERVAL)
            await session.flush_marks()
            await self._save_checkpoints(session, checkpoints)

    async def _save_checkpoints(
        self, session: ReplicationSession, checkpoints: list[_Checkpoint]
    ) -> None:
        for cp in checkpoints:
            ctx = cp.ctx
            body: dict[str, Any] = dict(cp.saved or {})
            if ctx.sender is not None and ctx.sender.tracker.safe is not None:
                body["local"] = ctx.sender.tracker.safe
            if ctx.receiver is not None and ctx.receiver.tracker.safe is not None:
                body["remote"] = ctx.receiver.tracker.safe
            if body == cp.saved:
                continue
            body["time"] = int(time.time())
            props = {**ctx.collection_property(), "client": cp.cp_id, "rev": cp.remote_rev or ""}
            try:
                reply = await session.conn.send_request("setCheckpoint", props, _json(body))
            except BlipError as exc:
                if exc.code != 409 or session.mode is Mode.COLLECTIONS:
                    raise
                reply = None
                found = await session.conn.send_request("getCheckpoint", {"client": cp.cp_id})
                props["rev"] = found.properties.get("rev", "") if found else ""
                reply = await session.conn.send_request("setCheckpoint", props, _json(body))
            assert reply is not None
            cp.remote_rev = reply.properties.get("rev") or cp.remote_rev
            key = local_checkpoint_key(cp.cp_id)
            await self.db.run(self.db.put_local, key, body, await self._local_rev(key))
            body.pop("time", None)
            cp.saved = body
            self._progressed = True

    # -- waiting for the end --------------------------------------------------------------

    def _finished(self, session: ReplicationSession, push_tasks: list[asyncio.Task[None]]) -> bool:
        cfg = self.config
        receivers_idle = all(
            ctx is None or ctx.receiver is None or ctx.receiver.idle for ctx in session.contexts
        )
        if receivers_idle and not self._pull_done.is_set() and self._resolving is None:
            self._resolving = asyncio.create_task(self._after_pull(session))
        senders_idle = all(
            ctx is None or ctx.sender is None or ctx.sender.idle for ctx in session.contexts
        )
        if cfg.continuous:
            idle = receivers_idle and senders_idle
            if idle and self._activity is ActivityLevel.BUSY:
                self._set_activity(ActivityLevel.IDLE)
            elif not idle and self._activity is ActivityLevel.IDLE:
                self._set_activity(ActivityLevel.BUSY)
            return False
        return receivers_idle and all(t.done() for t in push_tasks)

    async def _after_pull(self, session: ReplicationSession) -> None:
        """Pull caught up: resolve conflicts the database holds, then let push finish."""
        try:
            for ctx in session.contexts:
                if ctx is not None:
                    await resolve_stored_conflicts(session, ctx)
        except Exception as exc:
            session.fail(exc)
        finally:
            self._pull_done.set()
            self._idle_check.set()

    async def _wait_done(
        self, session: ReplicationSession, push_tasks: list[asyncio.Task[None]]
    ) -> None:
        self._error = None  # connected again: the failure that led here is over
        # A working connection restarts the backoff schedule (Couchbase Lite resets its
        # retry count on connecting).
        self._progressed = True
        self._set_activity(ActivityLevel.BUSY)
        closed = asyncio.ensure_future(session.conn.wait_closed())
        try:
            while True:
                for task in push_tasks:
                    if task.done() and not task.cancelled() and task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]
                if session.error.done():
                    raise session.error.result()
                if self._stop.is_set():
                    return
                if self._finished(session, push_tasks):
                    self._completed = self._total
                    return
                if closed.done():
                    raise blip.ConnectionClosedError(
                        session.conn.close_code,
                        session.conn.close_reason or "",
                        by_peer=bool(session.conn.closed_by_peer),
                    )
                self._idle_check.clear()
                idle_wait = asyncio.ensure_future(self._idle_check.wait())
                waiters: list[asyncio.Future[Any]] = [closed, session.error, idle_wait, *push_tasks]
                await asyncio.wait(waiters, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
                idle_wait.cancel()
        finally:
            closed.cancel()

    # -- pending documents ----------------------------------------------------------------

    def _pending_ids(self, coll: Collection) -> set[str]:
        cfg = self.config.collection_configs.get(coll)
        if cfg is None:
            raise ValueError(f"{coll.full_name} is not replicated by this replicator")
        found = self.db.get_local(f"replicator-peer/{self.config.target.url}")
        key = found[1]["key"] if found else self._url_key()
        cp = self.db.get_local(
            local_checkpoint_key(
                checkpoint_id(
                    self.db.uuid,
                    key,
                    coll.full_name,
                    _options_signature(cfg),
                )
            )
        )
        since = int(cp[1].get("local", 0)) if cp else 0
        remote_id = self.db.remote_id(key)
        wanted = set(cfg.document_ids) if cfg.document_ids else None
        pending: set[str] = set()
        while True:
            changes = coll.changes_since(since, 1000)
            if not changes:
                break
            since = changes[-1].sequence
            known = coll.remote_revisions([c.doc_id for c in changes], remote_id)
            for change in changes:
                if wanted is not None and change.doc_id not in wanted:
                    continue
                if known.get(change.doc_id) != change.rev_id:
                    pending.add(change.doc_id)
        if cfg.push_filter is not None:
            from engine.replication.status import DocumentFlags

            kept = set()
            for doc_id in pending:
                doc = coll.get_document(doc_id, include_deleted=True)
                if doc is not None and cfg.push_filter(
                    doc, DocumentFlags.DELETED if doc.deleted else DocumentFlags.NONE
                ):
                    kept.add(doc_id)
            pending = kept
        return pending


def _options_signature(cfg: CollectionConfiguration) -> Any:
    """What, besides the peer and the collection, makes a checkpoint (filters, doc IDs)."""
    return {
        "doc_ids": sorted(cfg.document_ids or []),
        "push_filter": cfg.push_filter is not None,
        "pull_filter": cfg.pull_filter is not None,
    }


def _json(value: Any) -> bytes:
    import orjson

    return orjson.dumps(value)
