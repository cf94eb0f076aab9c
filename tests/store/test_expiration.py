from __future__ import annotations

import datetime as dt
import time

import pytest

from engine.errors import NotFoundError
from engine.store import Collection, CollectionChange, Database, MutableDocument


def _wait_for(predicate: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_expired_documents_are_purged(coll: Collection) -> None:
    events: list[CollectionChange] = []
    coll.add_change_listener(events.append)
    coll.save(MutableDocument("short", {}))
    coll.save(MutableDocument("long", {}))
    coll.set_document_expiration("short", time.time() + 0.2)
    coll.set_document_expiration("long", dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    assert coll.get_document_expiration("short") is not None
    assert _wait_for(lambda: coll.get_document("short", include_deleted=True) is None)
    assert coll.get_document("long") is not None
    assert any("short" in e.document_ids for e in events)


def test_cancel_expiration(coll: Collection) -> None:
    coll.save(MutableDocument("a", {}))
    coll.set_document_expiration("a", time.time() + 3600)
    coll.set_document_expiration("a", None)
    assert coll.get_document_expiration("a") is None
    with pytest.raises(NotFoundError):
        coll.set_document_expiration("missing", time.time())


def test_expiration_survives_reopen(tmp_path: object) -> None:
    with Database("e", tmp_path) as db:  # type: ignore[arg-type]
        coll = db.default_collection()
        coll.save(MutableDocument("a", {}))
        coll.set_document_expiration("a", time.time() + 0.3)
    with Database("e", tmp_path) as db:  # type: ignore[arg-type]
        coll = db.default_collection()
        assert _wait_for(lambda: coll.get_document("a") is None)
