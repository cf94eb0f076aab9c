"""Peerbase engine: store, BLIP, replication, listener. Never imports Qt."""

from __future__ import annotations

from engine.errors import PeerbaseError

__all__ = ["PeerbaseError", "__version__"]

__version__ = "0.1.0"
