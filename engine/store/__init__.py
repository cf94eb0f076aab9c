"""The embedded document store: Couchbase Lite's data model on SQLite."""

from engine.store.blob import Blob, BlobStore, BlobWriter, digest_of, is_blob_dict
from engine.store.collection import Collection
from engine.store.database import Database, default_directory
from engine.store.document import (
    FAIL_ON_CONFLICT,
    LAST_WRITE_WINS,
    ConcurrencyControl,
    Document,
    MutableDocument,
)
from engine.store.names import DEFAULT_NAME, check_doc_id, split_full_name
from engine.store.observers import CollectionChange, DocumentChange, ListenerToken
from engine.store.replication_api import Change, InsertResult, RevisionData, RevisionInsert
from engine.store.revid import generation, new_rev_id

__all__ = [
    "DEFAULT_NAME",
    "FAIL_ON_CONFLICT",
    "LAST_WRITE_WINS",
    "Blob",
    "BlobStore",
    "BlobWriter",
    "Change",
    "Collection",
    "CollectionChange",
    "ConcurrencyControl",
    "Database",
    "Document",
    "DocumentChange",
    "InsertResult",
    "ListenerToken",
    "MutableDocument",
    "RevisionData",
    "RevisionInsert",
    "check_doc_id",
    "default_directory",
    "digest_of",
    "generation",
    "is_blob_dict",
    "new_rev_id",
    "split_full_name",
]
