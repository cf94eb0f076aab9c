"""Batches incoming revisions into few transactions: one commit per burst of `rev`s."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from engine.store import Collection, InsertResult, RevisionInsert

__all__ = ["Inserter"]

log = logging.getLogger(__name__)
MAX_BATCH = 500
#: A burst smaller than this waits BATCH_DELAY for more revs: one `sleep(0)` gathers only
#: ~20 revs per transaction at 3k docs/s, and each transaction costs a commit on the DB
#: thread plus a GIL hand-off to it and back on the event loop.
GOOD_BATCH = 100
BATCH_DELAY = 0.005


class _Job:
    """Revisions handed in together, and the future of their results (one per revision)."""

    __slots__ = ("future", "items")

    def __init__(
        self, items: list[RevisionInsert], future: asyncio.Future[list[InsertResult | Exception]]
    ) -> None:
        self.items = items
        self.future = future


class Inserter:
    """Queue revisions; a single worker stores them in batches and resolves the waiters."""

    def __init__(
        self,
        collection: Collection,
        remote_id: int | None,
        outstanding: Callable[[], int] = lambda: 0,
    ) -> None:
        self._collection = collection
        #: Mark stored revisions as held by this remote (the peer that sent them).
        self.remote_id = remote_id
        #: How many revisions the peer still owes (asked for and not yet stored).
        self._outstanding = outstanding
        self._queue: list[_Job] = []
        self._queued = 0  # revisions in the queue
        self._worker: asyncio.Task[None] | None = None
        #: The longest the queue of revisions waiting to be stored has been.
        self.max_queued = 0

    @property
    def busy(self) -> bool:
        return bool(self._queue) or (self._worker is not None and not self._worker.done())

    async def insert(self, item: RevisionInsert) -> InsertResult:
        """Store `item` (durably, with others) and return what happened."""
        (result,) = await self.insert_many([item])
        if isinstance(result, Exception):
            raise result
        return result

    async def insert_many(self, items: list[RevisionInsert]) -> list[InsertResult | Exception]:
        """Store every item (in as few transactions as fit); a result or error for each."""
        if not items:
            return []
        job = _Job(items, asyncio.get_running_loop().create_future())
        self._queue.append(job)
        self._queued += len(items)
        self.max_queued = max(self.max_queued, self._queued)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work(), name="rev-inserter")
        return await job.future

    def _take(self) -> list[_Job]:
        """Jobs for one transaction: up to MAX_BATCH revisions (at least one job)."""
        count = 0
        taken = 0
        for job in self._queue:
            if taken and count + len(job.items) > MAX_BATCH:
                break
            count += len(job.items)
            taken += 1
        jobs, self._queue = self._queue[:taken], self._queue[taken:]
        self._queued -= count
        return jobs

    async def _work(self) -> None:
        db = self._collection.database
        while self._queue:
            # Let revs that arrive together (or within a few ms) join this batch, but wait
            # only if more are on their way: a lone live edit is stored at once (latency).
            small = self._queued < GOOD_BATCH
            more_coming = self._outstanding() > self._queued
            await asyncio.sleep(BATCH_DELAY if small and more_coming else 0)
            jobs = self._take()
            items = [item for job in jobs for item in job.items]
            results: list[InsertResult | Exception]
            try:
                try:
                    results = list(
                        await db.run(
                            self._collection.insert_revisions, items, remote_id=self.remote_id
                        )
                    )
                except Exception as exc:
                    if len(items) == 1:
                        results = [exc]
                    else:
                        # One bad revision must not fail the others: store them one by one.
                        results = [await self._insert_one(item) for item in items]
            except BaseException:  # cancelled (closing): nobody waits for these forever
                for job in jobs:
                    job.future.cancel()
                raise
            start = 0
            for job in jobs:
                end = start + len(job.items)
                if not job.future.done():
                    job.future.set_result(results[start:end])
                start = end

    async def _insert_one(self, item: RevisionInsert) -> InsertResult | Exception:
        db = self._collection.database
        try:
            return (
                await db.run(self._collection.insert_revisions, [item], remote_id=self.remote_id)
            )[0]
        except Exception as exc:
            return exc

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        for job in self._queue:
            if not job.future.done():
                job.future.cancel()
        self._queue.clear()
        self._queued = 0
