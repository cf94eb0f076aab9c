"""`peerbase doc ...` and `peerbase db info`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from engine.cli.common import (
    CLIError,
    db_options,
    get_collection,
    open_database,
    print_json,
)
from engine.errors import NotFoundError
from engine.store import Collection, Document, MutableDocument


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = db_options()
    doc = sub.add_parser("doc", help="read and write documents")
    doc_sub = doc.add_subparsers(dest="doc_command", metavar="ACTION", required=True)

    put = doc_sub.add_parser("put", parents=[common], help="create or update a document")
    put.add_argument("id", help="document ID")
    put.add_argument("body", metavar="JSON", help="the document body, a JSON object ('-': stdin)")
    put.set_defaults(handler=cmd_put)

    get = doc_sub.add_parser("get", parents=[common], help="print a document")
    get.add_argument("id", help="document ID")
    get.set_defaults(handler=cmd_get)

    delete = doc_sub.add_parser("delete", parents=[common], help="delete a document")
    delete.add_argument("id", help="document ID")
    delete.set_defaults(handler=cmd_delete)

    ls = doc_sub.add_parser("list", parents=[common], help="list documents")
    ls.add_argument("--bodies", action="store_true", help="include bodies (with --json)")
    ls.add_argument("--deleted", action="store_true", help="include deleted documents")
    ls.add_argument("--limit", type=int, default=None, help="at most this many")
    ls.set_defaults(handler=cmd_list)

    db = sub.add_parser("db", help="database information")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    info = db_sub.add_parser("info", parents=[common], help="show database information")
    info.set_defaults(handler=cmd_info)


def _parse_body(text: str) -> dict[str, Any]:
    if text == "-":
        text = sys.stdin.read()
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise CLIError(f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise CLIError('the body must be a JSON object, e.g. \'{"name": "x"}\'')
    return body


def _doc_json(doc: Document, with_body: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"id": doc.id, "rev": doc.rev_id, "deleted": doc.deleted}
    if with_body:
        out["body"] = doc.properties
    return out


def cmd_put(args: argparse.Namespace) -> int:
    body = _parse_body(args.body)
    with open_database(args) as db:
        coll = get_collection(db, args.collection, create=True)
        existing = coll.get_document(args.id, include_deleted=True)
        doc = existing.to_mutable() if existing is not None else MutableDocument(args.id)
        doc.set_data(body)
        coll.save(doc)
        if args.json:
            print_json({"id": doc.id, "rev": doc.rev_id})
        else:
            print(doc.rev_id)
    return 0


def _existing(coll: Collection, doc_id: str, *, include_deleted: bool = False) -> Document:
    doc = coll.get_document(doc_id, include_deleted=include_deleted)
    if doc is None:
        raise NotFoundError(f"document {doc_id!r} not found in {coll.full_name}")
    return doc


def cmd_get(args: argparse.Namespace) -> int:
    with open_database(args, create=False) as db:
        coll = get_collection(db, args.collection, create=False)
        doc = _existing(coll, args.id, include_deleted=args.json)
        if args.json:
            print_json(_doc_json(doc, True))
        else:
            print(orjson.dumps(doc.properties, option=orjson.OPT_INDENT_2).decode())
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    with open_database(args, create=False) as db:
        coll = get_collection(db, args.collection, create=False)
        coll.delete(_existing(coll, args.id))
        deleted = _existing(coll, args.id, include_deleted=True)
        if args.json:
            print_json({"id": args.id, "rev": deleted.rev_id, "deleted": True})
        else:
            print(deleted.rev_id)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    with open_database(args, create=False) as db:
        coll = get_collection(db, args.collection, create=False)
        after: str | None = None
        remaining = args.limit
        while remaining is None or remaining > 0:
            page = 1000 if remaining is None else min(1000, remaining)
            ids = coll.document_ids(limit=page, after=after, include_deleted=args.deleted)
            for doc_id in ids:
                if args.json:
                    doc = coll.get_document(doc_id, include_deleted=True)
                    if doc is not None:
                        print_json(_doc_json(doc, args.bodies))
                else:
                    print(doc_id)
            if len(ids) < page:
                break
            after = ids[-1]
            if remaining is not None:
                remaining -= len(ids)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    with open_database(args, create=False) as db:
        collections = [
            {"name": c.full_name, "documents": c.count, "last_sequence": c.last_sequence}
            for c in db.all_collections()
        ]
        info = {"name": db.name, "path": str(db.path), "uuid": db.uuid, "collections": collections}
        if args.json:
            print_json(info)
        else:
            print(f"name:  {db.name}\npath:  {db.path}\nuuid:  {db.uuid}")
            for c in collections:
                print(
                    f"  {c['name']}: {c['documents']} documents, last sequence {c['last_sequence']}"
                )
    return 0
