"""Suite-wide hygiene: a test must not leave database threads (unclosed databases) behind."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

_OURS = ("db-", "housekeeper-")


def _our_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith(_OURS) and t.is_alive()}


@pytest.fixture(autouse=True)
def no_leaked_database_threads() -> Iterator[None]:
    before = _our_threads()
    yield
    deadline = time.monotonic() + 2.0
    leaked = _our_threads() - before
    while leaked and time.monotonic() < deadline:
        time.sleep(0.02)
        leaked = _our_threads() - before
    assert not leaked, f"test left database threads running: {sorted(t.name for t in leaked)}"
