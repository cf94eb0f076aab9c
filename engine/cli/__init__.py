"""The `peerbase` command line."""

from engine.cli.main import main

__all__ = ["main"]
