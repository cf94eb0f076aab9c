"""Shared CLI plumbing: common options, opening the database, output and errors."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from engine.errors import NotFoundError, PeerbaseError
from engine.store import Collection, Database, split_full_name


class CLIError(PeerbaseError):
    """A usage problem reported by a CLI command."""


def db_options() -> argparse.ArgumentParser:
    """Options every database command takes."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--db",
        required=True,
        type=Path,
        metavar="DIR",
        help="database directory (the database is named after the folder)",
    )
    parent.add_argument(
        "--collection",
        default="_default._default",
        metavar="SCOPE.NAME",
        help="collection to use (default: _default._default)",
    )
    parent.add_argument("--json", action="store_true", help="machine-readable JSON output")
    return parent


def open_database(args: argparse.Namespace, *, create: bool = True) -> Database:
    path: Path = args.db
    if not create and not (path / "db.sqlite3").is_file():
        raise CLIError(f"no database at {path}", hint="check --db, or create it with `doc put`")
    return Database.open_path(path)


def get_collection(db: Database, full_name: str, *, create: bool) -> Collection:
    scope, name = split_full_name(full_name)
    coll = db.create_collection(name, scope) if create else db.collection(name, scope)
    if coll is None:
        raise NotFoundError(f"collection {scope}.{name} does not exist in {db.name}")
    return coll


def print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value).decode() + "\n")


def run_command(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command, turning engine errors into a message on stderr and exit code 1."""
    try:
        return handler(args)
    except PeerbaseError as exc:
        print(f"peerbase: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("peerbase: interrupted", file=sys.stderr)
        return 130
