"""Replicator listeners: sync or async callables, called on the loop, removable by token."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any

from engine.store import ListenerToken

__all__ = ["ListenerSet"]

log = logging.getLogger(__name__)


class ListenerSet:
    """Callbacks of one kind; exceptions in one never reach the replicator."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[[Any], Any]] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    def __bool__(self) -> bool:
        return bool(self._callbacks)

    def add(self, callback: Callable[[Any], Any]) -> ListenerToken:
        self._callbacks.append(callback)

        def remove() -> None:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

        return ListenerToken(remove)

    def emit(self, event: Any) -> None:
        for callback in list(self._callbacks):
            try:
                result = callback(event)
            except Exception:
                log.exception("replicator listener %r failed", callback)
                continue
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                self._tasks.add(task)
                task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("async replicator listener failed", exc_info=task.exception())

    async def drain(self) -> None:
        """Wait for async listeners still running."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
