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
        self._queue: list[tuple[RevisionInsert, asyncio.Future[InsertResult]]] = []
        self._worker: asyncio.Task[None] | None = None
        #: The longest the queue of revisions waiting to be stored has been.
        self.max_queued = 0

    @property
    def busy(self) -> bool:
        return bool(self._queue) or (self._worker is not None and not self._worker.done())

    async def insert(self, item: RevisionInsert) -> InsertResult:
        """Store `item` (durably, with others) and return what happened."""
        future: asyncio.Future[InsertResult] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        self.max_queued = max(self.max_queued, len(self._queue))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work(), name="rev-inserter")
        return await future

    async def insert_many(self, items: list[RevisionInsert]) -> list[InsertResult | BaseException]:
        """Store every item (in as few transactions as fit); a result or error for each."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[InsertResult]] = []
        for item in items:
            future: asyncio.Future[InsertResult] = loop.create_future()
            self._queue.append((item, future))
            futures.append(future)
        self.max_queued = max(self.max_queued, len(self._queue))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work(), name="rev-inserter")
        return await asyncio.gather(*futures, return_exceptions=True)

    async def _work(self) -> None:
        db = self._collection.database
        while self._queue:
            # Let revs that arrive together (or within a few ms) join this batch, but wait
            # only if more are on their way: a lone live edit is stored at once (latency).
            small = len(self._queue) < GOOD_BATCH
            more_coming = self._outstanding() > len(self._queue)
            await asyncio.sleep(BATCH_DELAY if small and more_coming else 0)
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            items = [item for item, _ in batch]
            try:
                results = await db.run(
                    self._collection.insert_revisions, items, remote_id=self.remote_id
                )
            except Exception:
                if len(batch) == 1:
                    exc_future = batch[0][1]
                    if not exc_future.done():
                        exc_future.set_exception(_current_exception())
                    continue
                # One bad revision must not fail the others: store them one by one.
                self._queue = [(i, f) for i, f in batch] + self._queue
                await self._one_by_one(len(batch))
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def _one_by_one(self, count: int) -> None:
        db = self._collection.database
        for _ in range(count):
            item, future = self._queue.pop(0)
            try:
                result = (
                    await db.run(
                        self._collection.insert_revisions, [item], remote_id=self.remote_id
                    )
                )[0]
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
                continue
            if not future.done():
                future.set_result(result)

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        for _, future in self._queue:
            if not future.done():
                future.cancel()
        self._queue.clear()


def _current_exception() -> BaseException:
    import sys

    exc = sys.exc_info()[1]
    assert exc is not None
    return exc
