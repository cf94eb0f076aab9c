"""Events the sans-I/O core reports to its adapter."""

from __future__ import annotations

from dataclasses import dataclass

from engine.blip.errors import FrameError
from engine.blip.frame import FrameFlags, MessageType

__all__ = [
    "BodyReceived",
    "Event",
    "FrameDropped",
    "MessageBegun",
    "MessageEnded",
    "MessageReceived",
]


class _Flagged:
    __slots__ = ()
    flags: int

    @property
    def urgent(self) -> bool:
        return bool(self.flags & FrameFlags.URGENT)

    @property
    def no_reply(self) -> bool:
        return bool(self.flags & FrameFlags.NO_REPLY)

    @property
    def compressed(self) -> bool:
        return bool(self.flags & FrameFlags.COMPRESSED)


@dataclass(frozen=True, slots=True)
class MessageReceived(_Flagged):
    """A whole message arrived in one frame."""

    type: MessageType
    number: int
    flags: int
    properties: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class MessageBegun(_Flagged):
    """The properties of a multi-frame message arrived; body chunks follow."""

    type: MessageType
    number: int
    flags: int
    properties: dict[str, str]


@dataclass(frozen=True, slots=True)
class BodyReceived:
    """A piece of a multi-frame message's body; release ``credit`` once it is consumed."""

    type: MessageType
    number: int
    data: bytes
    credit: int


@dataclass(frozen=True, slots=True)
class MessageEnded:
    """The last frame of a multi-frame message arrived."""

    type: MessageType
    number: int


@dataclass(frozen=True, slots=True)
class FrameDropped:
    """A frame error (spec §3.8): the frame, and the message it began, were dropped."""

    type: MessageType | None
    number: int
    error: FrameError


Event = MessageReceived | MessageBegun | BodyReceived | MessageEnded | FrameDropped
