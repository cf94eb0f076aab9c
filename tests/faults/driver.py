"""Run one Replicator in its own process (to be SIGKILLed) and report on stdout as JSON lines.

    python -m tests.faults.driver URL --db DIR [--push | --pull] [--continuous]
        [--heartbeat S] [--max-wait S] [--checkpoint-interval S]

Lines: ``{"event": "status", "t": <monotonic>, "activity", "completed", "total", "error",
"transient"}``, ``{"event": "document", "dir", "id", "rev", "error"}``, ``{"event":
"changes", "sequences": [...]}`` for every non-empty ``changes`` message the peer sends
(what it announced, i.e. where it resumed from), and ``{"event": "done", ...}`` at the end.
Exit code 0 if the replication ended without error, else 1.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import orjson

import engine.replication.replicator as replicator_module
from engine.blip import IncomingRequest, OutgoingReply
from engine.replication import (
    DocumentReplication,
    Replicator,
    ReplicatorConfiguration,
    ReplicatorStatus,
    ReplicatorType,
    URLEndpoint,
)
from engine.replication.messages import decode_changes
from engine.replication.receiver import Receiver
from engine.store import Database


def emit(**fields: Any) -> None:
    sys.stdout.write(orjson.dumps(fields).decode() + "\n")
    sys.stdout.flush()


def _watch_changes() -> None:
    """Report every announced change (instrumentation only: behaviour unchanged)."""
    original = Receiver.on_changes

    async def on_changes(self: Receiver, request: IncomingRequest) -> OutgoingReply | None:
        entries = decode_changes(request.body)
        if entries:
            emit(event="changes", sequences=[e.sequence for e in entries])
        return await original(self, request)

    Receiver.on_changes = on_changes  # type: ignore[method-assign]


def _status(status: ReplicatorStatus) -> None:
    error = status.error
    emit(
        event="status",
        t=time.monotonic(),
        activity=status.activity.name,
        completed=status.progress.completed,
        total=status.progress.total,
        error=None if error is None else str(error),
        transient=None if error is None else bool(getattr(error, "transient", False)),
    )


def _documents(event: DocumentReplication) -> None:
    for doc in event.documents:
        emit(
            event="document",
            dir="push" if event.is_push else "pull",
            id=doc.id,
            rev=doc.rev_id,
            error=None if doc.error is None else str(doc.error),
        )


async def run(args: argparse.Namespace) -> int:
    replicator_module.CHECKPOINT_INTERVAL = args.checkpoint_interval
    _watch_changes()
    kind = ReplicatorType.PUSH_AND_PULL
    if args.push:
        kind = ReplicatorType.PUSH
    elif args.pull:
        kind = ReplicatorType.PULL
    db = Database.open_path(args.db)
    try:
        replicator = Replicator(
            ReplicatorConfiguration(
                URLEndpoint(args.url),
                [db.default_collection()],
                replicator_type=kind,
                continuous=args.continuous,
                heartbeat=args.heartbeat,
                max_attempt_wait_time=args.max_wait,
            )
        )
        replicator.add_change_listener(_status)
        replicator.add_document_replication_listener(_documents)
        replicator.start()
        status = await replicator.wait_stopped()
        stats = replicator.statistics
        emit(
            event="done",
            activity=status.activity.name,
            error=None if status.error is None else str(status.error),
            pushed=stats.docs_pushed,
            pulled=stats.docs_pulled,
        )
        return 0 if status.error is None else 1
    finally:
        db.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults.driver")
    parser.add_argument("url")
    parser.add_argument("--db", required=True, type=Path)
    direction = parser.add_mutually_exclusive_group()
    direction.add_argument("--push", action="store_true")
    direction.add_argument("--pull", action="store_true")
    parser.add_argument("--continuous", action="store_true")
    parser.add_argument("--heartbeat", type=float, default=30.0)
    parser.add_argument("--max-wait", type=float, default=1.0)
    parser.add_argument(
        "--checkpoint-interval",
        type=float,
        default=replicator_module.CHECKPOINT_INTERVAL,
        help="seconds between checkpoints (the engine's default unless given)",
    )
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
