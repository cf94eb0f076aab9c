"""Documents: immutable `Document` snapshots and dict-like `MutableDocument`."""

from __future__ import annotations

import copy
import enum
import uuid
from collections.abc import Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

import orjson

from engine.store.blob import Blob, is_blob_dict
from engine.store.names import check_doc_id
from engine.store.revid import generation

if TYPE_CHECKING:
    from engine.store.collection import Collection


class ConcurrencyControl(enum.Enum):
    """What `Collection.save` does when the document changed since it was read."""

    LAST_WRITE_WINS = 0
    FAIL_ON_CONFLICT = 1


LAST_WRITE_WINS = ConcurrencyControl.LAST_WRITE_WINS
FAIL_ON_CONFLICT = ConcurrencyControl.FAIL_ON_CONFLICT


class Document(Mapping[str, Any]):
    """A saved revision of a document; read-only."""

    __slots__ = (
        "_body",
        "_collection",
        "_data",
        "conflicts",
        "deleted",
        "id",
        "rev_id",
        "sequence",
    )

    def __init__(
        self,
        doc_id: str,
        rev_id: str | None,
        sequence: int,
        deleted: bool,
        body: bytes | None,
        conflicts: tuple[str, ...] = (),
        collection: Collection | None = None,
    ) -> None:
        self.id = doc_id
        self.rev_id = rev_id
        self.sequence = sequence
        self.deleted = deleted
        self.conflicts = conflicts
        self._body = body
        self._data: dict[str, Any] | None = None
        self._collection = collection

    @property
    def _props(self) -> dict[str, Any]:
        if self._data is None:
            self._data = orjson.loads(self._body) if self._body else {}
        return self._data

    @property
    def properties(self) -> dict[str, Any]:
        """A fresh copy of the body as a dict."""
        return orjson.loads(self._body) if self._body else {}

    @property
    def collection(self) -> Collection | None:
        return self._collection

    @property
    def generation(self) -> int:
        return generation(self.rev_id) if self.rev_id else 0

    def __getitem__(self, key: str) -> Any:
        return self._props[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._props)

    def __len__(self) -> int:
        return len(self._props)

    def get_blob(self, key: str) -> Blob | None:
        """The blob stored under `key`, or None if that value is not a blob."""
        value = self._props.get(key)
        if isinstance(value, Blob):
            return value
        if isinstance(value, dict) and is_blob_dict(value) and self._collection is not None:
            return Blob.from_dict(value, self._collection.database.blob_store)
        return None

    def to_mutable(self) -> MutableDocument:
        doc = MutableDocument(self.id, copy.deepcopy(self._props))
        doc.rev_id, doc.sequence, doc.deleted = self.rev_id, self.sequence, self.deleted
        doc.conflicts, doc._collection = self.conflicts, self._collection
        return doc

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Document):
            return NotImplemented
        return (self.id, self.rev_id, self.deleted, self._props) == (
            other.id,
            other.rev_id,
            other.deleted,
            other._props,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        flag = ", deleted" if self.deleted else ""
        return f"{type(self).__name__}({self.id!r}, rev={self.rev_id!r}{flag})"


class MutableDocument(Document, MutableMapping[str, Any]):
    """A document being edited; save it with `Collection.save`."""

    __slots__ = ()

    def __init__(self, doc_id: str | None = None, data: Mapping[str, Any] | None = None) -> None:
        # Attributes set directly (no super().__init__): documents are made in bulk.
        self.id = check_doc_id(doc_id) if doc_id is not None else uuid.uuid4().hex
        self.rev_id = None
        self.sequence = 0
        self.deleted = False
        self.conflicts = ()
        self._body = None
        self._collection = None
        self._data = dict(data) if data is not None else {}

    @property
    def properties(self) -> dict[str, Any]:
        return self._props

    def set_data(self, data: Mapping[str, Any]) -> None:
        self._data = dict(data)

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise TypeError(f"document keys must be str, not {type(key).__name__}")
        self._props[key] = value

    def __delitem__(self, key: str) -> None:
        del self._props[key]
