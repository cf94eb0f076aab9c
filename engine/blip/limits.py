"""Configurable limits that bound what a peer can make us buffer."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BlipLimits"]


@dataclass(frozen=True, slots=True)
class BlipLimits:
    """Size limits for incoming data; exceeding one closes the connection (code 1009)."""

    #: Largest incoming message (properties plus body, uncompressed).
    max_message_size: int = 64 << 20
    #: Largest properties block of one incoming message.
    max_properties_size: int = 256 << 10
    #: Largest incoming frame (one WebSocket message); Couchbase Lite rejects frames over ~1 MB.
    max_frame_size: int = 1 << 20
    #: Largest uncompressed body of one compressed frame: the deflate-bomb guard.
    max_inflated_frame_size: int = 16 << 20

    def __post_init__(self) -> None:
        for name in self.__slots__:
            if getattr(self, name) <= 0:
                raise ValueError(f"BlipLimits.{name} must be positive")
