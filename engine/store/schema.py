"""The SQLite schema: one `kv_<n>` table per collection, sequence = rowid."""

from __future__ import annotations

import sqlite3
import uuid

SCHEMA_VERSION = 1

# Row flags of kv tables.
DELETED = 1
CONFLICTED = 2

_BASE = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS collections (
    id INTEGER PRIMARY KEY,
    scope TEXT NOT NULL,
    name TEXT NOT NULL,
    last_seq INTEGER NOT NULL DEFAULT 0,
    UNIQUE (scope, name)
);
CREATE TABLE IF NOT EXISTS local_docs (id TEXT PRIMARY KEY, rev TEXT NOT NULL, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS remotes (id INTEGER PRIMARY KEY, address TEXT NOT NULL UNIQUE);
"""


def kv_table(coll_id: int) -> str:
    return f"kv_{coll_id}"


def create_kv_table(conn: sqlite3.Connection, coll_id: int) -> None:
    table = kv_table(coll_id)
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {table} ("
        " seq INTEGER PRIMARY KEY,"
        " doc_id TEXT NOT NULL UNIQUE,"
        " rev TEXT NOT NULL,"
        " flags INTEGER NOT NULL,"
        " body BLOB NOT NULL,"
        " tree BLOB,"
        " expiry REAL)"
    )
    conn.execute(
        f"CREATE INDEX IF NOT EXISTS {table}_expiry ON {table}(expiry) WHERE expiry IS NOT NULL"
    )
    # Documents in conflict, looked for after every pull: without it, a full scan of the
    # table (bodies included), ~50 ms per 100,000 documents. Partial: costs nothing else.
    conn.execute(
        f"CREATE INDEX IF NOT EXISTS {table}_conflicted ON {table}(seq) WHERE flags & {CONFLICTED}"
    )


def initialise(conn: sqlite3.Connection) -> str:
    """Create the schema if needed (inside the caller's transaction); return the DB UUID."""
    for statement in _BASE.split(";"):
        if statement.strip():
            conn.execute(statement)
    row = conn.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
    if row is None:
        conn.execute("INSERT INTO meta VALUES ('version', ?)", (str(SCHEMA_VERSION),))
        conn.execute("INSERT INTO meta VALUES ('uuid', ?)", (uuid.uuid4().hex,))
    elif int(row[0]) > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(f"schema version {row[0]} is newer than this Peerbase")
    conn.execute("INSERT OR IGNORE INTO collections (scope, name) VALUES ('_default', '_default')")
    for (coll_id,) in conn.execute("SELECT id FROM collections").fetchall():
        create_kv_table(conn, coll_id)
    return str(conn.execute("SELECT value FROM meta WHERE key = 'uuid'").fetchone()[0])
