"""The sending side of one collection: announces changes, then sends the wanted `rev`s.

The active replicator offers its changes with `changes` (every branch end, so peers that
accept branches converge on the same revision trees) and switches to `proposeChanges` when
the peer is conflict-free (Couchbase Lite answers `changes` with 409); the passive peer
answers a `subChanges` with `changes`. Both then send `rev` messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from engine.blip import BlipError, ConnectionClosedError
from engine.errors import PeerbaseError
from engine.jsondelta import create_delta
from engine.replication.checkpoint import SequenceTracker
from engine.replication.errors import (
    ForbiddenError,
    PermanentError,
    ProtocolError,
    TransientError,
)
from engine.replication.messages import (
    ChangeEntry,
    ProposedChange,
    RevMessage,
    decode_changes_reply,
    decode_propose_reply,
    encode_changes,
    encode_proposals,
    flag,
)
from engine.replication.revbatch import PROFILE as REVS_PROFILE
from engine.replication.revbatch import BatchEntry, Status, decode_batch_reply, encode_batch
from engine.replication.status import DocumentFlags, ReplicatedDocument
from engine.store import Change, Document, RevisionData

if TYPE_CHECKING:
    from engine.replication.session import CollectionContext, ReplicationSession

log = logging.getLogger(__name__)

MAX_CHANGES_IN_FLIGHT = 4
MAX_REVS_IN_FLIGHT = 256
MIN_DELTA_BODY = 200
#: Smaller rev bodies go uncompressed: deflate + sync flush costs ~90 us per 1 KB JSON body
#: (40-48% of the sender's event loop) and saves only ~25% of the bytes. Any choice is
#: wire-compatible: the receiver inflates only frames flagged compressed.
MIN_COMPRESSED_REV = 4096
#: `revs` batches (Peerbase peers): at most this many revisions or bytes of bodies each;
#: a bigger body (or a delta) goes in its own `rev`. At most MAX_BATCHES_IN_FLIGHT
#: unanswered (at most 1 MB of bodies): batches of 200 kept both processes busier than
#: 100 (30k docs: push 13-15k -> 16-17k docs/s). A larger window (8 in flight) was no
#: faster, and BLIP interleaves the messages in flight, so on a slow link none of them
#: completes (nor moves the checkpoint) before all of them do.
REV_BATCH = 200
REV_BATCH_BYTES = 256 * 1024
MAX_BATCHES_IN_FLIGHT = 4
MAX_BATCHED_BODY = 64 * 1024


class Sender:
    """Feeds one collection's changes to the peer."""

    def __init__(
        self,
        session: ReplicationSession,
        ctx: CollectionContext,
        *,
        since: int,
        continuous: bool,
        batch_size: int = 200,
        propose: bool,
        active_only: bool = False,
        doc_ids: Sequence[str] | None = None,
        tracker: SequenceTracker | None = None,
        skip_known: bool = False,
    ) -> None:
        self.session = session
        self.ctx = ctx
        self.since = since
        self.continuous = continuous
        self.batch_size = max(1, min(batch_size, 1000))
        self.propose = propose or (session.active and session.peer_conflict_free)
        self.active_only = active_only
        self.doc_ids = set(doc_ids) if doc_ids else None
        self.tracker = tracker or SequenceTracker(since)
        self.caught_up = False
        self.peer_deltas = False
        self.max_history = 20
        self._changes_slots = asyncio.Semaphore(MAX_CHANGES_IN_FLIGHT)
        self._rev_slots = asyncio.Semaphore(MAX_REVS_IN_FLIGHT)
        self._batch_slots = asyncio.Semaphore(MAX_BATCHES_IN_FLIGHT)
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._hold: asyncio.Event | None = None
        self._offered = False
        self._outstanding = 0  # revs sent and not yet answered
        self._acked = asyncio.Event()
        self._acked.set()
        #: Skip changes the peer is known to hold. The passive side does so only for a
        #: Peerbase client that asks (Couchbase Lite offers them back, and its clients
        #: expect that); a client that reset its checkpoint does not ask.
        self._skip_known = session.active or skip_known
        #: Passive: the last change skipped as held by the peer, with nothing offered
        #: after it; offered at the end so the client's checkpoint moves past it.
        self._skipped_tail: Change | None = None
        #: Revision bodies read and not yet acknowledged (now, and the most ever).
        self.bodies_held = 0
        self.max_bodies_held = 0

    @property
    def idle(self) -> bool:
        return self.caught_up and not self._tasks and not self._outstanding

    def hold_until(self, event: asyncio.Event) -> None:
        """One-shot: after catching up, wait for `event` and look for changes once more."""
        self._hold = event

    async def run(self) -> None:
        coll = self.ctx.collection
        token = coll.add_change_listener(lambda _change: self._wake.set())
        try:
            await self._loop()
        finally:
            token.remove()
            for task in list(self._tasks):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, PeerbaseError):
                await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _loop(self) -> None:
        db = self.session.db
        last = self.since
        announced = False
        initial = True
        while True:
            self._wake.clear()
            changes: list[Change] = await db.run(
                self.ctx.collection.changes_since,
                last,
                self.batch_size,
                all_leaves=not self.propose,
                remote_id=self.ctx.remote_id,
            )
            if changes:
                last = changes[-1].sequence
                await self._announce(changes, skip_deleted=initial and self.active_only)
            if len({c.sequence for c in changes}) == self.batch_size:
                continue
            initial = False
            await self._offer_skipped_tail()
            await self._drain()
            if not announced:
                announced = True
                # The passive side always marks "caught up"; an active pusher does only
                # when it had nothing to offer (as Couchbase Lite does).
                if not self.session.active or not self._offered:
                    await self._send_caught_up()
            self.caught_up = True
            self.session.check_idle()
            if self.continuous:
                await self._wake.wait()
                self.caught_up = False
                continue
            if self._hold is not None:
                await self._hold.wait()
                self._hold = None
                continue  # conflict resolutions made while pulling get pushed now
            return

    async def _offer_skipped_tail(self) -> None:
        """Passive: offer the last change skipped as held by the client.

        Its checkpoint follows the sequences it is offered; without this, a feed whose
        end it already holds would be scanned again from the same place on every sync.
        """
        tail, self._skipped_tail = self._skipped_tail, None
        if tail is None or self.session.active:
            return
        self.tracker.begin(tail.sequence)
        self.session.events.add_total(1)
        await self._changes_slots.acquire()
        self._offered = True
        self.caught_up = False
        self._spawn(self._exchange([tail], {}))

    async def _drain(self) -> None:
        while self._tasks or self._outstanding:
            if self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
            else:
                await self._acked.wait()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.session.fail(task.exception())  # type: ignore[arg-type]
        self.session.check_idle()

    async def _send_caught_up(self) -> None:
        profile = "proposeChanges" if self.propose else "changes"
        props = self.ctx.collection_property()
        with contextlib.suppress(ConnectionClosedError):
            await self.session.conn.send_request(profile, props, b"[]", urgent=True, no_reply=True)

    # -- announcing ----------------------------------------------------------------------

    async def _announce(self, changes: list[Change], *, skip_deleted: bool) -> None:
        selected, known = await self._select(changes, skip_deleted)
        if not selected:
            return
        await self._changes_slots.acquire()
        self._offered = True
        self.caught_up = False
        self._spawn(self._exchange(selected, known))

    async def _select(
        self, changes: list[Change], skip_deleted: bool
    ) -> tuple[list[Change], dict[str, str]]:
        """Apply docIDs, activeOnly, the push filter, and skip what the peer already has."""
        out = []
        for change in changes:
            if (self.doc_ids is not None and change.doc_id not in self.doc_ids) or (
                skip_deleted and change.deleted
            ):
                self.tracker.skip(change.sequence)
            else:
                out.append(change)
        known: dict[str, str] = {}
        if not out:
            return out, known
        db = self.session.db
        coll = self.ctx.collection
        remote_id = self.ctx.remote_id
        if remote_id is not None:  # the peer already has revisions it sent us
            known = {c.doc_id: c.held_rev for c in out if c.held_rev is not None}
            for change in out:  # acknowledged but not yet written down
                pending = self.ctx.marks.get(change.doc_id)
                if pending is not None:
                    known[change.doc_id] = pending
            if self._skip_known:
                kept = []
                for change in out:
                    if known.get(change.doc_id) == change.rev_id:
                        self.tracker.skip(change.sequence)
                        self._skipped_tail = change
                    else:
                        kept.append(change)
                out = kept
        tail = self._skipped_tail
        if out and tail is not None and out[-1].sequence > tail.sequence:
            self._skipped_tail = None  # offering a later change moves the peer past it
        push_filter = self.ctx.push_filter
        if push_filter is not None and out:
            revs = await db.run(coll.read_revisions, [(c.doc_id, c.rev_id) for c in out])
            kept = []
            for change, rev in zip(out, revs, strict=True):
                keep = rev is not None and await _call_filter(push_filter, coll, rev)
                if keep:
                    kept.append(change)
                else:
                    self.tracker.skip(change.sequence)
            out = kept
        for change in out:
            self.tracker.begin(change.sequence)
        self.session.events.add_total(len(out))
        return out, known

    async def _exchange(self, changes: list[Change], known: dict[str, str]) -> None:
        """Send one changes/proposeChanges message and the revisions the peer wants."""
        props = self.ctx.collection_property()
        try:
            wanted: list[tuple[Change, list[str]]] | None = None
            if not self.propose and self.session.active and self.session.peer_conflict_free:
                self.propose = True
                changes = self._current_only(changes)
            if not self.propose:
                try:
                    wanted = await self._offer_changes(changes, props)
                except BlipError as exc:
                    if exc.code != 409 or not self.session.active:
                        raise
                    # A conflict-free peer (Couchbase Lite) refuses `changes` with 409:
                    # propose instead, resending this batch (spec: Algorithm, Push 3).
                    self.session.peer_conflict_free = True
                    self.propose = True
                    changes = self._current_only(changes)
            if wanted is None:
                wanted = await self._propose(changes, props, known)
            if wanted:
                # The slot is held until this batch's bodies are all handed to rev sends:
                # at most MAX_CHANGES_IN_FLIGHT batches of bodies are ever in memory.
                await self._send_revs(wanted)
        except BlipError as exc:
            if exc.code == 403:
                raise ForbiddenError(
                    f"the peer refused the push: {exc.message}", domain=exc.domain, code=403
                ) from exc
            raise
        finally:
            self._changes_slots.release()

    async def _offer_changes(
        self, changes: list[Change], props: dict[str, str]
    ) -> list[tuple[Change, list[str]]]:
        entries = [
            ChangeEntry(c.sequence, c.doc_id, c.rev_id, c.deleted, c.body_size) for c in changes
        ]
        reply = await self.session.conn.send_request(
            "changes", props, encode_changes(entries), urgent=True, compressed=True
        )
        assert reply is not None
        self._read_reply_properties(reply.properties)
        wants = decode_changes_reply(reply.body, len(changes))
        wanted = []
        for change, want in zip(changes, wants, strict=True):
            if want is None:
                self._not_sent(change, 304, None)
            else:
                wanted.append((change, want))
        return wanted

    async def _propose(
        self, changes: list[Change], props: dict[str, str], known: dict[str, str]
    ) -> list[tuple[Change, list[str]]]:
        proposals = [
            ProposedChange(c.doc_id, c.rev_id, known.get(c.doc_id, ""), c.body_size)
            for c in changes
        ]
        reply = await self.session.conn.send_request(
            "proposeChanges",
            {**props, "conflictIncludesRev": "true"},
            encode_proposals(proposals),
            urgent=True,
            compressed=True,
        )
        assert reply is not None
        self._read_reply_properties(reply.properties)
        verdicts = decode_propose_reply(reply.body, len(changes))
        wanted = []
        for change, (status, rev) in zip(changes, verdicts, strict=True):
            server = known.get(change.doc_id)
            if status == 0:
                wanted.append((change, [server] if server else []))
            else:
                self._not_sent(change, status, rev)
        return wanted

    def _current_only(self, changes: list[Change]) -> list[Change]:
        """Drop the extra branch ends a conflict-free peer cannot take."""
        seen: set[str] = set()
        out = []
        for change in changes:
            if change.doc_id in seen:
                self.tracker.finish(change.sequence)
                self.session.events.add_completed(1)
            else:
                seen.add(change.doc_id)
                out.append(change)
        return out

    def _read_reply_properties(self, props: dict[str, str]) -> None:
        if flag(props, "deltas"):
            self.peer_deltas = True
        with contextlib.suppress(ValueError):
            self.max_history = max(1, int(props.get("maxHistory", self.max_history)))

    def _not_sent(self, change: Change, status: int, rev: str | None) -> None:
        """The peer did not want the revision: 304 (has it) or 409 (a conflict)."""
        error = None
        if status == 409:
            error = PeerbaseError(
                f"{change.doc_id} conflicts with the peer's revision {rev}",
                hint="pull to resolve the conflict, then push again",
            )
            self.session.stats.errors += 1
        self._sent(change, None, error)

    async def _send_revs(self, wanted: list[tuple[Change, list[str]]]) -> None:
        db = self.session.db
        coll = self.ctx.collection
        known = {c.doc_id: anc for c, anc in wanted}
        revs: list[RevisionData | None] = await db.run(
            coll.read_revisions,
            [(c.doc_id, c.rev_id) for c, _ in wanted],
            max_history=self.max_history,
            known=known,
        )
        self.bodies_held += len(revs)
        self.max_bodies_held = max(self.max_bodies_held, self.bodies_held)
        batching = self.session.peer_rev_batches
        batch: list[tuple[Change, RevisionData]] = []
        size = 0
        for (change, ancestors), rev in zip(wanted, revs, strict=True):
            if rev is None:
                await self._rev_slots.acquire()
                try:
                    await self._send_norev(change)
                finally:
                    self._rev_released()
                continue
            body, delta_src = rev.body, None
            if self._may_delta(rev, ancestors):
                body, delta_src = await self._body_for(rev, ancestors)
            if batching and delta_src is None and len(body) <= MAX_BATCHED_BODY:
                batch.append((change, rev))
                size += len(body)
                if len(batch) >= REV_BATCH or size >= REV_BATCH_BYTES:
                    await self._send_batch(batch)
                    batch, size = [], 0
            else:
                await self._rev_slots.acquire()
                self._pipeline(change, rev, body, delta_src)
        if batch:
            await self._send_batch(batch)

    async def _send_batch(self, batch: list[tuple[Change, RevisionData]]) -> None:
        """Queue one `revs` message (Peerbase extension) for these revisions."""
        await self._batch_slots.acquire()
        body = encode_batch([
            BatchEntry(rev.doc_id, rev.rev_id, rev.history, change.sequence, rev.deleted,
                       self.propose, rev.body)
            for change, rev in batch
        ])
        try:
            future = self.session.conn.request(REVS_PROFILE, self.ctx.collection_property(), body)
        except BlipError as exc:  # the connection is closing
            self._batch_released(len(batch))
            self.session.fail(exc)
            return
        if not self._outstanding:
            self._acked.clear()
        self._outstanding += len(batch)
        future.add_done_callback(functools.partial(self._batch_replied, batch))

    def _batch_released(self, count: int) -> None:
        self.bodies_held -= count
        self._batch_slots.release()
        self.session.check_idle()

    def _batch_replied(
        self, batch: list[tuple[Change, RevisionData]], future: asyncio.Future[Any]
    ) -> None:
        self._outstanding -= len(batch)
        if not self._outstanding:
            self._acked.set()
        exc = None if future.cancelled() else future.exception()
        statuses: list[Status] | None = None
        if exc is None:
            try:
                statuses = decode_batch_reply(future.result().body, len(batch))
            except ProtocolError as bad_reply:
                exc = bad_reply
        if statuses is None:
            if isinstance(exc, BlipError) and exc.code in (403, 503, 507):
                exc = _push_refused(exc)
            self.session.fail(exc or ConnectionClosedError(None, "request cancelled"))
            self._batch_released(len(batch))
            return
        stored: list[tuple[Change, RevisionData]] = []
        for (change, rev), status in zip(batch, statuses, strict=True):
            if status == 0:
                stored.append((change, rev))
            else:
                code, message = status if isinstance(status, tuple) else (status, "")
                error = BlipError("HTTP", code, message or f"error {code}")
                if code in (403, 503, 507):
                    self.session.fail(_push_refused(error))  # the change stays unsent
                else:
                    self.session.stats.errors += 1
                    self._sent(change, rev, error)
        if stored:
            self._stored(stored)
        self._batch_released(len(batch))

    def _stored(self, stored: list[tuple[Change, RevisionData]]) -> None:
        """`_sent` for many revisions the peer stored, with the bookkeeping done once."""
        stats = self.session.stats
        stats.docs_pushed += len(stored)
        stats.bytes_pushed += sum(len(rev.body) for _, rev in stored)
        finish = self.tracker.finish
        for change, _ in stored:
            finish(change.sequence)
        self.session.remote_has_many(self.ctx, [(rev.doc_id, rev.rev_id) for _, rev in stored])
        self.session.events.add_completed(len(stored))
        if self.session.events.wants_documents:
            for change, _ in stored:
                self._report(change, None)

    def _pipeline(
        self, change: Change, rev: RevisionData, body: bytes, delta_src: str | None
    ) -> None:
        """Queue one `rev` and handle its reply in a callback (no task per revision)."""
        props = RevMessage(rev.doc_id, rev.rev_id, tuple(rev.history), rev.deleted,
                           str(change.sequence), delta_src, self.propose,
                           ).properties(self.ctx.wire_index)
        try:
            future = self.session.conn.request(
                "rev", props, body, compressed=len(body) >= MIN_COMPRESSED_REV)
        except BlipError as exc:  # the connection is closing
            self._rev_released()
            self.session.fail(exc)
            return
        if not self._outstanding:
            self._acked.clear()
        self._outstanding += 1
        future.add_done_callback(
            functools.partial(self._rev_replied, change, rev, len(body), delta_src))

    def _rev_replied(self, change: Change, rev: RevisionData, size: int,
                     delta_src: str | None, future: asyncio.Future[Any]) -> None:
        self._outstanding -= 1
        if not self._outstanding:
            self._acked.set()
        exc = None if future.cancelled() else future.exception()
        if future.cancelled() or isinstance(exc, ConnectionClosedError):
            self._rev_released()
            self.session.fail(exc or ConnectionClosedError(None, "request cancelled"))
            return
        if exc is None:
            self.session.stats.docs_pushed += 1
            self.session.stats.bytes_pushed += size
            self._sent(change, rev, None)
        elif isinstance(exc, BlipError) and delta_src is not None and exc.code in (404, 422):
            # The peer lacks the delta's base: resend the full body, keeping this slot
            # (the resend's reply releases it).
            self._pipeline(change, rev, rev.body, None)
            return
        elif isinstance(exc, BlipError) and exc.code in (403, 503, 507):
            self.session.fail(_push_refused(exc))
        elif isinstance(exc, PeerbaseError):
            self.session.stats.errors += 1
            self._sent(change, rev, exc)
        else:
            self.session.fail(exc or RuntimeError("rev failed"))
        self._rev_released()

    def _rev_released(self) -> None:
        self.bodies_held -= 1
        self._rev_slots.release()
        self.session.check_idle()

    async def _send_norev(self, change: Change) -> None:
        props = {
            **self.ctx.collection_property(),
            "id": change.doc_id,
            "rev": change.rev_id,
            "sequence": str(change.sequence),
            "error": "410",
            "reason": "revision replaced by a newer one",
        }
        with contextlib.suppress(ConnectionClosedError):
            await self.session.conn.send_request("norev", props, b"", no_reply=True)
        self._sent(change, None, None)

    def _sent(self, change: Change, rev: RevisionData | None, error: PeerbaseError | None) -> None:
        self.tracker.finish(change.sequence)
        self.session.events.add_completed(1)
        if rev is not None and error is None:
            self.session.remote_has(self.ctx, rev.doc_id, rev.rev_id)
        if self.session.events.wants_documents:
            self._report(change, error)

    def _report(self, change: Change, error: PeerbaseError | None) -> None:
        """The document event of one change pushed (or not)."""
        flags = DocumentFlags.DELETED if change.deleted else DocumentFlags.NONE
        self.session.events.document(
            True,
            ReplicatedDocument(
                change.doc_id, self.ctx.collection.full_name, flags, error, change.rev_id
            ),
        )

    def _may_delta(self, rev: RevisionData, ancestors: list[str]) -> bool:
        return bool(
            self.session.options.delta_sync
            and self.peer_deltas
            and ancestors
            and len(rev.body) >= MIN_DELTA_BODY
            and not rev.deleted
        )

    async def _body_for(self, rev: RevisionData, ancestors: list[str]) -> tuple[bytes, str | None]:
        """The body to send: a delta against a revision the peer has, when smaller."""
        coll = self.ctx.collection
        for ancestor in ancestors:
            # Off the event loop: diffing long strings can take a while.
            has_base, encoded = await self.session.db.run(_encoded_delta, coll, rev, ancestor)
            if not has_base:
                continue
            if encoded is None:
                break
            if len(encoded) < len(rev.body):
                self.session.stats.deltas_sent += 1
                self.session.stats.delta_bytes_saved += len(rev.body) - len(encoded)
                return encoded, ancestor
            break
        return rev.body, None


def _push_refused(exc: BlipError) -> PeerbaseError:
    """The replication-stopping error for a `rev` the peer refused as a whole."""
    if exc.code == 403:
        return ForbiddenError(f"the peer refused the push: {exc.message}", domain=exc.domain,
                              code=403)
    if exc.code == 507:  # the peer's disk is full: stop; the change stays unsent
        return PermanentError(f"the peer cannot store more: {exc.message}", domain=exc.domain,
                              code=507, hint="free disk space on the peer, then sync again")
    return TransientError(f"the peer is busy: {exc.message}", domain=exc.domain, code=503)


def _encoded_delta(coll: Any, rev: RevisionData, ancestor: str) -> tuple[bool, bytes | None]:
    """(base body found?, the JSON delta from `ancestor` to `rev` or None if unusable)."""
    base = coll.revision_body(rev.doc_id, ancestor)
    if base is None:
        return False, None
    delta = create_delta(orjson.loads(base), orjson.loads(rev.body))
    if delta is None or not isinstance(delta, dict):
        return True, None
    return True, orjson.dumps(delta)


async def _call_filter(push_filter: Any, coll: Any, rev: RevisionData) -> bool:
    doc = Document(rev.doc_id, rev.rev_id, rev.sequence, rev.deleted, rev.body, collection=coll)
    flags = DocumentFlags.DELETED if rev.deleted else DocumentFlags.NONE
    result = push_filter(doc, flags)
    if inspect.isawaitable(result):
        result = await result
    return bool(result)
