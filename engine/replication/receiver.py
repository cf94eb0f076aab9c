"""The receiving side of one collection: answers `changes`/`proposeChanges`, stores `rev`s.

Used by the active replicator to pull and by the passive peer to accept pushes.
"""

from __future__ import annotations

import inspect
import logging
from typing import TYPE_CHECKING, Any

import orjson

from engine.blip import BlipError, IncomingRequest, OutgoingReply
from engine.errors import (
    CorruptDatabaseError,
    DatabaseBusyError,
    DatabaseClosedError,
    DiskFullError,
    PeerbaseError,
)
from engine.jsondelta import DeltaError, apply_delta
from engine.replication.blobs import blob_digests, fetch_blob, may_have_blobs
from engine.replication.checkpoint import SequenceTracker
from engine.replication.conflicts import Conflict, default_resolver
from engine.replication.errors import ProtocolError
from engine.replication.inserter import Inserter
from engine.replication.messages import (
    RevMessage,
    decode_changes,
    decode_proposals,
    encode_changes_reply,
    encode_propose_reply,
    flag,
)
from engine.replication.revbatch import Status, decode_batch, encode_batch_reply
from engine.replication.status import DocumentFlags, ReplicatedDocument
from engine.store import Document, InsertResult, MutableDocument, RevisionData, RevisionInsert
from engine.store.revid import canonical_json

if TYPE_CHECKING:
    from engine.replication.session import CollectionContext, ReplicationSession

log = logging.getLogger(__name__)

_SPECIAL = ("_id", "_rev", "_deleted", "_revisions", "_exp")

#: History length asked of peers (LiteCore's default depth): enough to reach our current
#: revision after many offline edits; the store prunes to its own depth afterwards.
MAX_HISTORY = 50


class Receiver:
    """Handles incoming changes and revisions for one collection of a session."""

    def __init__(self, session: ReplicationSession, ctx: CollectionContext) -> None:
        self.session = session
        self.ctx = ctx
        self.tracker = SequenceTracker(ctx.pull_since)
        self._expected: dict[tuple[str, str], Any] = {}
        self._first_reply = True
        self.caught_up = False
        self.inserter = Inserter(ctx.collection, ctx.remote_id, lambda: len(self._expected))

    @property
    def idle(self) -> bool:
        """Caught up, and no wanted revision still outstanding."""
        return self.caught_up and not self._expected and not self.inserter.busy

    def _reply_properties(self) -> dict[str, str]:
        depth = max(MAX_HISTORY, self.session.db.max_rev_tree_depth)
        props = {"maxHistory": str(depth), "blobs": "true"}
        if self._first_reply and self.session.options.delta_sync:
            props["deltas"] = "true"
        self._first_reply = False
        return props

    def _refuse_if_read_only(self) -> None:
        if self.session.options.read_only:
            raise BlipError("BLIP", 403, "this peer is read-only: pushing is not allowed")

    # -- changes / proposeChanges -------------------------------------------------------

    async def on_changes(self, request: IncomingRequest) -> OutgoingReply | None:
        self._refuse_if_read_only()
        if self.session.options.conflict_free and not self.session.active:
            raise BlipError("BLIP", 409, "this peer is conflict-free: use proposeChanges")
        entries = decode_changes(request.body)
        if not entries:
            self.caught_up = True
            self.session.check_idle()
            return None if request.no_reply else OutgoingReply(body=b"[]")
        coll = self.ctx.collection
        wants = await self.session.db.run(
            coll.find_ancestors,
            [(e.doc_id, e.rev_id) for e in entries],
            require_bodies=self.session.options.delta_sync,
        )
        wanted = 0
        for entry, want in zip(entries, wants, strict=True):
            if want is None:
                self.tracker.skip(entry.sequence)
            else:
                self._expected[(entry.doc_id, entry.rev_id)] = entry.sequence
                self.tracker.begin(entry.sequence)
                wanted += 1
        self.session.events.add_total(wanted)
        self.session.check_idle()
        if request.no_reply:
            return None
        return OutgoingReply(
            self._reply_properties(), encode_changes_reply(wants), compressed=True, urgent=True
        )

    async def on_propose(self, request: IncomingRequest) -> OutgoingReply | None:
        self._refuse_if_read_only()
        entries = decode_proposals(request.body)
        if not entries:
            return None if request.no_reply else OutgoingReply(body=b"[]")
        current = await self.session.db.run(
            self.ctx.collection.current_revisions, [e.doc_id for e in entries]
        )
        verdicts: list[tuple[int, str | None]] = []
        for entry in entries:
            cur = current.get(entry.doc_id)
            if cur is None or cur[0] == entry.server_rev_id:
                verdicts.append((0, None))
                self._expected[(entry.doc_id, entry.rev_id)] = None
            elif cur[0] == entry.rev_id:
                verdicts.append((304, None))
            else:
                verdicts.append((409, cur[0]))
        if request.no_reply:
            return None
        body = encode_propose_reply(
            verdicts, include_rev=flag(request.properties, "conflictIncludesRev")
        )
        return OutgoingReply(self._reply_properties(), body, compressed=True, urgent=True)

    # -- rev / norev ---------------------------------------------------------------------

    async def on_norev(self, request: IncomingRequest) -> None:
        doc_id = request.properties.get("id", "")
        rev_id = request.properties.get("rev", "")
        self._done(
            doc_id,
            rev_id,
            DocumentFlags.NONE,
            PeerbaseError(
                f"peer could not send {doc_id} {rev_id} "
                f"(error {request.properties.get('error', '?')})"
            ),
        )

    async def on_rev(self, request: IncomingRequest) -> OutgoingReply | None:
        self._refuse_if_read_only()
        msg = RevMessage.parse(request.properties)
        try:
            body = self._decode_body(request.body)
            item = await self._prepare(msg, body, may_have_blobs(request.body))
            result = None if item is None else await self.inserter.insert(item)
            if result is not None:
                await self._after_insert(msg, result)
        except Exception as exc:
            failure = self._failed(msg, exc)
            if failure is exc:
                raise
            raise failure from exc
        error = self._outcome(msg, result, len(request.body))
        if error is not None:
            raise error
        return None

    async def on_revs(self, request: IncomingRequest) -> OutgoingReply | None:
        """A `revs` message (Peerbase extension): store many revisions, one status each."""
        self._refuse_if_read_only()
        try:
            entries = decode_batch(request.body)
        except ProtocolError as exc:
            raise BlipError("HTTP", 400, exc.args[0]) from None
        blobs = may_have_blobs(request.body)
        statuses: list[Status] = [0] * len(entries)
        items: list[RevisionInsert] = []
        stored: list[int] = []
        # Without blobs or a pull filter, nothing to wait for (batches hold no deltas).
        plain = not blobs and self.ctx.pull_filter is None
        for i, (msg, body) in enumerate(entries):
            try:
                item = self._plain(msg, body) if plain else await self._prepare(msg, body, blobs)
            except Exception as exc:
                statuses[i] = _status(self._failed(msg, exc))
                continue
            if item is None:
                self._outcome(msg, None, 0)
            else:
                items.append(item)
                stored.append(i)
        results = await self.inserter.insert_many(items) if items else []
        handled = 0
        try:
            for i, item, result in zip(stored, items, results, strict=True):
                msg = entries[i][0]
                try:
                    if isinstance(result, BaseException):
                        raise result
                    if result.conflicted:
                        await self._after_insert(msg, result)
                except Exception as exc:
                    statuses[i] = _status(self._failed(msg, exc))
                    continue
                error = self._outcome(msg, result, len(item.body), tally=False)
                handled += 1
                if error is not None:
                    statuses[i] = _status(error)
        finally:  # counted even if cancelled while resolving a conflict
            if handled:
                self._tally(handled)
        if request.no_reply:
            return None
        return OutgoingReply(body=encode_batch_reply(statuses))

    def _failed(self, msg: RevMessage, exc: Exception) -> Exception:
        """The error to answer for a revision that could not be stored."""
        if isinstance(exc, BlipError):
            self._done(msg.doc_id, msg.rev_id, DocumentFlags.NONE, exc)
            return exc
        if isinstance(exc, (DiskFullError, DatabaseBusyError, CorruptDatabaseError,
                            DatabaseClosedError)):
            # Not this document's fault: it stays pending, so no checkpoint passes it.
            # Pulling, the replication stops with this error; a pusher gets 507 or 503.
            if self.session.active:
                self.session.fail(exc)
            code = 503 if isinstance(exc, DatabaseBusyError) else 507
            return BlipError("HTTP", code, f"could not store {msg.doc_id}: {exc}")
        if isinstance(exc, PeerbaseError):
            self._done(msg.doc_id, msg.rev_id, DocumentFlags.NONE, exc)
            return BlipError("HTTP", 500, f"could not store {msg.doc_id}: {exc}")
        return exc

    def _outcome(
        self, msg: RevMessage, result: InsertResult | None, size: int, *, tally: bool = True
    ) -> BlipError | None:
        """Report a revision handled (stored, already known, filtered out or rejected).

        With `tally` False the caller counts it as completed (once for many revisions).
        """
        flags = DocumentFlags.DELETED if msg.deleted else DocumentFlags.NONE
        if result is not None and result.rejected:
            error = BlipError(
                "HTTP", 409, f"{msg.doc_id} {msg.rev_id} conflicts with {result.current_rev_id}"
            )
            self._done(msg.doc_id, msg.rev_id, flags, error, tally=tally)
            return error
        self.session.stats.docs_pulled += result is not None and result.inserted
        self.session.stats.bytes_pulled += size
        self._done(msg.doc_id, msg.rev_id, flags, None, tally=tally)
        return None

    def _done(
        self,
        doc_id: str,
        rev_id: str,
        flags: DocumentFlags,
        error: PeerbaseError | None,
        *,
        tally: bool = True,
    ) -> None:
        seq = self._expected.pop((doc_id, rev_id), None)
        if seq is not None:
            self.tracker.finish(seq)
        events = self.session.events
        if events.wants_documents:
            events.document(
                False,
                ReplicatedDocument(doc_id, self.ctx.collection.full_name, flags, error, rev_id),
            )
        if tally:
            self._tally(1)

    def _tally(self, completed: int) -> None:
        self.session.events.add_completed(completed)
        self.session.check_idle()

    async def _prepare(
        self, msg: RevMessage, body: dict[str, Any], blobs: bool
    ) -> RevisionInsert | None:
        """The revision to insert (None if the pull filter drops it); fetches missing blobs.

        `blobs` False means the raw message cannot reference a blob (a quick byte check).
        """
        db = self.session.db
        coll = self.ctx.collection
        if msg.delta_src:
            body = await self._apply_delta(msg, body)
        for key in _SPECIAL:
            body.pop(key, None)  # before the filter sees it
        pull_filter = self.ctx.pull_filter
        if pull_filter is not None:
            doc = Document(
                msg.doc_id, msg.rev_id, 0, msg.deleted, canonical_json(body), collection=coll
            )
            flags = DocumentFlags.DELETED if msg.deleted else DocumentFlags.NONE
            keep = pull_filter(doc, flags)
            if inspect.isawaitable(keep):
                keep = await keep
            if not keep:
                return None
        if blobs or msg.delta_src:
            for digest in dict.fromkeys(blob_digests(body)):
                if not db.blob_store.has(digest):
                    length = await fetch_blob(
                        self.session.conn, db, digest, msg.doc_id, self.ctx.wire_index
                    )
                    self.session.stats.bytes_pulled += length
        return self._plain(msg, body)

    @staticmethod
    def _plain(msg: RevMessage, body: dict[str, Any]) -> RevisionInsert:
        """The revision to insert, from a full body with no blob to fetch."""
        for key in _SPECIAL:
            body.pop(key, None)
        return RevisionInsert(
            msg.doc_id,
            msg.rev_id,
            msg.history,
            canonical_json(body),
            msg.deleted,
            no_conflicts=msg.no_conflicts,
        )

    async def _after_insert(self, msg: RevMessage, result: InsertResult) -> None:
        if result.inserted and result.conflicted and self.session.active:
            await self._resolve(msg.doc_id, result)

    @staticmethod
    def _decode_body(raw: bytes) -> dict[str, Any]:
        try:
            body = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError as exc:
            raise BlipError("HTTP", 400, f"rev body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise BlipError("HTTP", 400, "rev body must be a JSON object")
        return body

    async def _apply_delta(self, msg: RevMessage, delta: dict[str, Any]) -> dict[str, Any]:
        assert msg.delta_src is not None
        coll = self.ctx.collection

        def patch() -> Any:  # off the event loop, like every store call
            base = coll.revision_body(msg.doc_id, msg.delta_src or "")
            return None if base is None else apply_delta(orjson.loads(base), delta)

        try:
            result = await self.session.db.run(patch)
        except DeltaError as exc:
            raise BlipError("HTTP", 422, f"bad delta for {msg.doc_id}: {exc}") from exc
        if result is None:
            raise BlipError(
                "HTTP",
                404,
                f"delta source {msg.delta_src} of {msg.doc_id} "
                "is not available; send the full revision",
            )
        if not isinstance(result, dict):
            raise BlipError("HTTP", 422, f"delta for {msg.doc_id} does not give an object")
        self.session.stats.deltas_received += 1
        return result

    async def _resolve(self, doc_id: str, result: InsertResult) -> None:
        """Resolve the conflict a pulled revision created (active side only)."""
        coll = self.ctx.collection
        remote_rev = result.rev_id
        local_revs = [r for r in result.open_leaves if r != remote_rev]
        if not local_revs:
            return
        local_rev = local_revs[0]
        local, remote = await self.session.db.run(
            coll.read_revisions, [(doc_id, local_rev), (doc_id, remote_rev)]
        )
        if local is None or remote is None:
            return
        conflict, winner = await _decide(self.ctx, doc_id, local, remote)
        await self.session.db.run(_apply_resolution, coll, doc_id, conflict, winner)
        self.session.stats.conflicts_resolved += 1


def _status(exc: BaseException) -> Status:
    """A `revs` reply status for a revision that failed."""
    if isinstance(exc, BlipError):
        return (exc.code, exc.message)
    return (500, f"{type(exc).__name__}: {exc}")


async def _decide(
    ctx: CollectionContext, doc_id: str, local: RevisionData, remote: RevisionData
) -> tuple[Conflict, Document | None]:
    """Ask the collection's resolver (or the default one) to pick between two branches."""
    coll = ctx.collection

    def side(rev: RevisionData) -> Document | None:
        if rev.deleted:
            return None
        return Document(doc_id, rev.rev_id, 0, False, rev.body, collection=coll)

    conflict = Conflict(doc_id, side(local), side(remote), local.rev_id, remote.rev_id)
    resolver = ctx.conflict_resolver or default_resolver
    winner = resolver(conflict)
    if inspect.isawaitable(winner):
        winner = await winner
    return conflict, winner


async def resolve_stored_conflicts(session: ReplicationSession, ctx: CollectionContext) -> int:
    """Resolve conflicts already in the collection (branches taken while passive).

    The winner is chosen among the open branches with the collection's resolver, the
    current branch playing "local"; returns how many documents were resolved.
    """
    coll = ctx.collection
    db = session.db
    resolved = 0
    for doc_id in await db.run(coll.conflicted_ids):
        leaves = await db.run(coll.open_leaves, doc_id)
        if len(leaves) < 2:
            continue
        conflict, winner = await _decide(ctx, doc_id, leaves[0], leaves[1])
        await db.run(_apply_local_resolution, coll, doc_id, conflict, winner)
        resolved += 1
    session.stats.conflicts_resolved += resolved
    return resolved


def _apply_local_resolution(
    coll: Any, doc_id: str, conflict: Conflict, winner: Document | None
) -> None:
    """Keep the winning branch as it is when it is one of them; else a merge on the current."""
    if winner is None:
        deleted = conflict.local_document is None and conflict.local_rev_id
        if deleted:
            coll.resolve_conflict(doc_id, conflict.local_rev_id)
        elif conflict.remote_document is None:
            coll.resolve_conflict(doc_id, conflict.remote_rev_id)
        else:
            coll.resolve_conflict(doc_id, conflict.local_rev_id, delete=True)
    elif not isinstance(winner, MutableDocument) and winner.rev_id in (
            conflict.local_rev_id, conflict.remote_rev_id):
        coll.resolve_conflict(doc_id, winner.rev_id)
    else:
        coll.resolve_conflict(doc_id, conflict.local_rev_id, winner.properties)


def _apply_resolution(coll: Any, doc_id: str, conflict: Conflict, winner: Document | None) -> None:
    """Keep the remote branch; put the resolved body on top of it unless it is the remote's.

    The other branches end in closing tombstones. Every step makes deterministic revIDs,
    so peers resolving the same conflict the same way make the same revisions.
    """
    if winner is None:
        if conflict.remote_document is None:  # the remote deletion wins as it is
            coll.resolve_conflict(doc_id, conflict.remote_rev_id)
        else:
            coll.resolve_conflict(doc_id, conflict.remote_rev_id, delete=True)
    elif isinstance(winner, MutableDocument) or winner.rev_id != conflict.remote_rev_id:
        coll.resolve_conflict(doc_id, conflict.remote_rev_id, winner.properties)
    else:
        coll.resolve_conflict(doc_id, conflict.remote_rev_id)
