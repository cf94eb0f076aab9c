"""Replicator listeners: sync or async callables, called on the loop, removable by token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.store import ListenerToken
from engine.store.observers import CallbackRunner

__all__ = ["ListenerSet"]


class ListenerSet:
    """Callbacks of one kind; exceptions in one never reach the replicator."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[[Any], Any]] = []
        self._runner = CallbackRunner("replicator listener")

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
            self._runner.call(callback, event)

    async def drain(self) -> None:
        """Wait for async listeners still running."""
        await self._runner.drain()
