"""A background thread per database: notices other processes' commits, purges expired docs.

Other processes' commits show up as a change of ``PRAGMA data_version`` on a separate
connection; it is polled every 50 ms while anyone listens, so their changes reach this
process's listeners within about 100 ms.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from typing import TYPE_CHECKING

from engine.errors import DatabaseClosedError

if TYPE_CHECKING:
    from engine.store.database import Database

log = logging.getLogger(__name__)

POLL_INTERVAL = 0.05
IDLE_INTERVAL = 1.0


class Housekeeper(threading.Thread):
    """Polls for external commits and purges expired documents."""

    def __init__(self, db: Database) -> None:
        super().__init__(name=f"housekeeper-{db.name}", daemon=True)
        self._db = db
        self._stop_event = threading.Event()
        self._wake = threading.Event()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop_event.set()
        self._wake.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=5)

    def run(self) -> None:
        try:
            conn = sqlite3.connect(self._db.file, check_same_thread=True, timeout=5)
        except sqlite3.Error:
            log.exception("housekeeper could not open %s", self._db.file)
            return
        try:
            self._loop(conn)
        except DatabaseClosedError:
            pass  # closed while we were looking: nothing left to do
        finally:
            conn.close()

    def _loop(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        next_expiry = self._db._next_expiry()
        while not self._stop_event.is_set():
            listening = self._db.notifier.has_listeners()
            timeout = POLL_INTERVAL if listening else IDLE_INTERVAL
            if next_expiry is not None:
                timeout = max(0.0, min(timeout, next_expiry - time.time()))
            if self._wake.wait(timeout):
                self._wake.clear()
                if self._stop_event.is_set():
                    return
                next_expiry = self._db._next_expiry()
            try:
                new_version = conn.execute("PRAGMA data_version").fetchone()[0]
                if new_version != version:
                    version = new_version
                    if listening:
                        self._db._scan_external()
                    next_expiry = self._db._next_expiry()
                if next_expiry is not None and next_expiry <= time.time():
                    self._db._purge_expired(time.time())
                    next_expiry = self._db._next_expiry()
            except DatabaseClosedError:
                return
            except Exception:
                if self._db.is_closed:
                    return
                log.exception("housekeeping of %s failed", self._db.name)
                self._stop_event.wait(IDLE_INTERVAL)
