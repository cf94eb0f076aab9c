"""`peerbase sync URL`: replicate a database with a passive peer (the active side)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any, TextIO

from engine.cli.common import CLIError, get_collection, open_database, print_json
from engine.replication import (
    ActivityLevel,
    BasicAuthenticator,
    ClientCertificateAuthenticator,
    CollectionConfiguration,
    DocumentReplication,
    Replicator,
    ReplicatorConfiguration,
    ReplicatorStatus,
    ReplicatorType,
    URLEndpoint,
)

#: Read when --user is given without --password (keeps the password out of `ps`).
PASSWORD_ENV = "PEERBASE_PASSWORD"
BAR_WIDTH = 30


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sync = sub.add_parser(
        "sync",
        help="replicate with a peer (active side)",
        description="Replicate a database with a passive peer (a Peerbase listener or a "
        "Couchbase Lite URLEndpointListener). One-shot unless --continuous.",
    )
    sync.add_argument("url", help="ws://host:port/db or wss://host:port/db")
    sync.add_argument("--db", required=True, type=Path, metavar="DIR", help="database directory")
    sync.add_argument(
        "--collection",
        action="append",
        metavar="SCOPE.NAME",
        help="collection to replicate (repeatable; default: _default._default)",
    )
    direction = sync.add_mutually_exclusive_group()
    direction.add_argument("--push", action="store_true", help="push only")
    direction.add_argument("--pull", action="store_true", help="pull only")
    sync.add_argument(
        "--continuous", action="store_true", help="keep replicating until Ctrl-C or SIGTERM"
    )
    sync.add_argument("--user", help="HTTP Basic user name")
    sync.add_argument("--password", help=f"password (default: ${PASSWORD_ENV})")
    sync.add_argument("--delta-sync", action="store_true", help="send and accept deltas")
    sync.add_argument(
        "--doc-id", action="append", metavar="ID", help="replicate only this document (repeatable)"
    )
    sync.add_argument(
        "--pinned-cert",
        type=Path,
        metavar="FILE",
        help="accept only this server certificate (PEM or DER)",
    )
    sync.add_argument(
        "--self-signed-only",
        action="store_true",
        help="accept any self-signed server certificate, refuse CA-signed ones",
    )
    sync.add_argument(
        "--client-identity",
        metavar="LABEL",
        help="authenticate with this TLS identity's client certificate",
    )
    sync.add_argument(
        "--json", action="store_true", help="one JSON object per status change and per document"
    )
    sync.set_defaults(handler=cmd_sync)


def _config(args: argparse.Namespace, db: Any) -> ReplicatorConfiguration:
    try:
        endpoint = URLEndpoint(args.url)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    names = args.collection or ["_default._default"]
    doc_ids = args.doc_id or None
    collections = {
        get_collection(db, name, create=True): CollectionConfiguration(document_ids=doc_ids)
        for name in names
    }
    authenticator: Any = None
    if args.user:
        password = args.password if args.password is not None else os.environ.get(PASSWORD_ENV)
        if password is None:
            raise CLIError(f"--user needs --password or ${PASSWORD_ENV}")
        authenticator = BasicAuthenticator(args.user, password)
    elif args.password:
        raise CLIError("--password needs --user")
    if args.client_identity:
        if authenticator is not None:
            raise CLIError("use either --user or --client-identity, not both")
        from engine.tls import TLSIdentity

        authenticator = ClientCertificateAuthenticator(TLSIdentity.get(args.client_identity))
    pinned = None
    if args.pinned_cert:
        try:
            pinned = args.pinned_cert.read_bytes()
        except OSError as exc:
            raise CLIError(f"cannot read {args.pinned_cert}: {exc.strerror}") from None
        from engine.tls import load_certificate

        load_certificate(pinned)  # a clear error now rather than at the handshake
    if (pinned or args.self_signed_only or args.client_identity) and not endpoint.tls:
        raise CLIError("--pinned-cert, --self-signed-only and --client-identity need wss://")
    kind = (
        ReplicatorType.PUSH
        if args.push
        else (ReplicatorType.PULL if args.pull else ReplicatorType.PUSH_AND_PULL)
    )
    return ReplicatorConfiguration(
        endpoint,
        collections,
        replicator_type=kind,
        continuous=args.continuous,
        authenticator=authenticator,
        pinned_server_certificate=pinned,
        accept_only_self_signed_server_certificate=args.self_signed_only,
        enable_delta_sync=args.delta_sync,
    )


def cmd_sync(args: argparse.Namespace) -> int:
    with open_database(args) as db:
        config = _config(args, db)
        return asyncio.run(_run(config, as_json=args.json))


async def _run(config: ReplicatorConfiguration, *, as_json: bool) -> int:
    replicator = Replicator(config)
    progress = ProgressBar(sys.stderr) if not as_json and sys.stderr.isatty() else None
    if as_json:
        replicator.add_change_listener(_print_status)
        replicator.add_document_replication_listener(_print_documents)
    elif progress is not None:
        replicator.add_change_listener(progress.update)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, replicator.stop)
    replicator.start()
    status = await replicator.wait_stopped()
    if progress is not None:
        progress.finish()
    stats = replicator.statistics
    if status.error is not None:
        print(f"peerbase: error: {status.error}", file=sys.stderr)
        return 1
    if not as_json:
        print(
            f"pushed {stats.docs_pushed} and pulled {stats.docs_pulled} documents"
            + (
                f" ({stats.conflicts_resolved} conflicts resolved)"
                if stats.conflicts_resolved
                else ""
            )
        )
    else:
        print_json(
            {
                "event": "done",
                "pushed": stats.docs_pushed,
                "pulled": stats.docs_pulled,
                "conflicts_resolved": stats.conflicts_resolved,
                "deltas_sent": stats.deltas_sent,
                "deltas_received": stats.deltas_received,
            }
        )
    return 0


def _print_status(status: ReplicatorStatus) -> None:
    error = status.error
    print_json(
        {
            "event": "status",
            "activity": status.activity.name.lower(),
            "completed": status.progress.completed,
            "total": status.progress.total,
            "error": None
            if error is None
            else {
                "message": str(error),
                "domain": getattr(error, "domain", None),
                "code": getattr(error, "code", None),
            },
        }
    )
    sys.stdout.flush()


def _print_documents(event: DocumentReplication) -> None:
    for doc in event.documents:
        print_json(
            {
                "event": "document",
                "direction": "push" if event.is_push else "pull",
                "collection": doc.collection,
                "id": doc.id,
                "rev": doc.rev_id or None,
                "deleted": bool(doc.flags & 1),
                "error": None if doc.error is None else str(doc.error),
            }
        )
    sys.stdout.flush()


class ProgressBar:
    """A one-line live progress bar on a terminal."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.shown = False

    def update(self, status: ReplicatorStatus) -> None:
        done, total = status.progress.completed, status.progress.total
        fraction = (
            done / total
            if total
            else (1.0 if status.activity in (ActivityLevel.IDLE, ActivityLevel.STOPPED) else 0.0)
        )
        filled = int(BAR_WIDTH * fraction)
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        self.stream.write(f"\r[{bar}] {done}/{total} {status.activity.name.lower():<10}")
        self.stream.flush()
        self.shown = True

    def finish(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()
