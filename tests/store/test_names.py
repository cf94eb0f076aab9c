from __future__ import annotations

import pytest

from engine.errors import InvalidDocumentIDError, InvalidNameError
from engine.store import Database, split_full_name
from engine.store.names import check_collection_name, check_doc_id


@pytest.mark.parametrize("name", ["a", "Z9", "with-dash_and%pct", "x" * 251, "_default"])
def test_valid_collection_names(name: str) -> None:
    assert check_collection_name(name) == name


@pytest.mark.parametrize("name", ["", "_hidden", "%pct", "sp ace", "dot.ted", "x" * 252, "é"])
def test_invalid_collection_names(name: str) -> None:
    with pytest.raises(InvalidNameError) as info:
        check_collection_name(name)
    assert isinstance(info.value, ValueError)
    assert "name" in str(info.value)


def test_doc_ids() -> None:
    assert check_doc_id("a") == "a"
    assert check_doc_id("é" * 125) == "é" * 125  # 250 bytes
    for bad in ["", "é" * 126, "x" * 251]:
        with pytest.raises(InvalidDocumentIDError):
            check_doc_id(bad)


def test_split_full_name() -> None:
    assert split_full_name("_default._default") == ("_default", "_default")
    assert split_full_name("s.c") == ("s", "c")
    assert split_full_name("c") == ("_default", "c")
    with pytest.raises(InvalidNameError):
        split_full_name("s._x")


def test_bad_database_names(tmp_path: object) -> None:
    for bad in ["", "a/b", ".hidden"]:
        with pytest.raises(InvalidNameError):
            Database(bad, tmp_path)  # type: ignore[arg-type]
