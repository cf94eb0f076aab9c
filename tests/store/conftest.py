from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.store import Collection, Database


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database("test", tmp_path)
    yield database
    database.close()


@pytest.fixture
def coll(db: Database) -> Collection:
    return db.default_collection()
