"""Entry point of the `peerbase` command: builds the parser and dispatches."""

from __future__ import annotations

import argparse
import logging
import sys

from engine import __version__
from engine.cli import doc_commands, identity_commands, listen_commands, sync_commands
from engine.cli.common import run_command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="peerbase",
        description="Peer-to-peer document sync, compatible with Couchbase Lite.",
    )
    parser.add_argument("--version", action="version", version=f"peerbase {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (doc_commands, sync_commands, listen_commands, identity_commands):
        module.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0
    return run_command(handler, args)


if __name__ == "__main__":
    sys.exit(main())
