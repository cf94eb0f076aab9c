"""Change listeners: who wants to hear about which commits, and how they are called.

A listener registered while an asyncio loop runs is called on that loop (coroutine
functions become tasks); otherwise it is called in the committing thread. Either way
it runs after the commit, never inside a transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.store.collection import Collection

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CollectionChange:
    """Documents of one collection changed in one commit."""

    collection: Collection
    document_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DocumentChange:
    """One document changed."""

    collection: Collection
    document_id: str


Callback = Callable[[Any], Any]


class ListenerToken:
    """Returned by add_*_listener; `remove()` stops the notifications."""

    __slots__ = ("_remove",)

    def __init__(self, remove: Callable[[], None]) -> None:
        self._remove: Callable[[], None] | None = remove

    def remove(self) -> None:
        if self._remove is not None:
            self._remove()
            self._remove = None


@dataclass(slots=True, eq=False)
class _Listener:
    callback: Callback
    loop: asyncio.AbstractEventLoop | None


class CallbackRunner:
    """Calls listeners that may be sync or async; async ones run as tracked tasks.

    A failing listener is logged and never reaches the code that notified it.
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self.tasks: set[asyncio.Task[Any]] = set()

    def call(self, callback: Callback, event: object) -> None:
        try:
            result = callback(event)
        except Exception:
            log.exception("%s %r failed", self.what, callback)
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self.tasks.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("async %s failed", self.what, exc_info=task.exception())

    async def drain(self) -> None:
        """Wait for async listeners still running."""
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)

    def cancel(self) -> None:
        for task in list(self.tasks):
            task.cancel()


class Notifier:
    """Listener registry of one database, keyed by collection ID and document ID."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._collection: dict[int, list[_Listener]] = {}
        self._document: dict[tuple[int, str], list[_Listener]] = {}
        self._runner = CallbackRunner("change listener")

    def has_listeners(self, coll_id: int | None = None) -> bool:
        with self._lock:
            if coll_id is None:
                return bool(self._collection or self._document)
            return coll_id in self._collection or any(k[0] == coll_id for k in self._document)

    def add(self, key: int | tuple[int, str], callback: Callback) -> ListenerToken:
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
            if inspect.iscoroutinefunction(callback):
                raise TypeError("async listeners must be added from a running event loop") from None
        listener = _Listener(callback, loop)
        table: dict[Any, list[_Listener]] = (
            self._collection if isinstance(key, int) else self._document
        )
        with self._lock:
            table.setdefault(key, []).append(listener)

        def remove() -> None:
            with self._lock:
                entries = table.get(key, [])
                if listener in entries:
                    entries.remove(listener)
                if not entries:
                    table.pop(key, None)

        return ListenerToken(remove)

    def notify(self, collection: Collection, doc_ids: list[str]) -> None:
        """Deliver one commit's changes of `collection`."""
        if not doc_ids:
            return
        coll_id = collection.id
        with self._lock:
            coll_listeners = list(self._collection.get(coll_id, ()))
            doc_listeners = [
                (doc_id, list(self._document[(coll_id, doc_id)]))
                for doc_id in dict.fromkeys(doc_ids)
                if (coll_id, doc_id) in self._document
            ]
        if coll_listeners:
            event = CollectionChange(collection, tuple(dict.fromkeys(doc_ids)))
            for listener in coll_listeners:
                self._deliver(listener, event)
        for doc_id, listeners in doc_listeners:
            for listener in listeners:
                self._deliver(listener, DocumentChange(collection, doc_id))

    def _deliver(self, listener: _Listener, event: object) -> None:
        if listener.loop is None:
            self._runner.call(listener.callback, event)
            return
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody listens any more
            listener.loop.call_soon_threadsafe(self._runner.call, listener.callback, event)

    def clear(self) -> None:
        with self._lock:
            self._collection.clear()
            self._document.clear()
        self._runner.cancel()
