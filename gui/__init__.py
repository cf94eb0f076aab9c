"""Peerbase desktop GUI (PySide6). Talks to the engine only through its public API."""
