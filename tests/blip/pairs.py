"""Two BlipCores wired back to back (test helper)."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.blip import (
    BlipCore,
    BodyReceived,
    Event,
    FrameDropped,
    MessageBegun,
    MessageEnded,
    MessageReceived,
    MessageType,
)


@dataclass
class Received:
    """Messages one core reassembled, in completion order, and the order they began."""

    complete: list[tuple[MessageType, int, int, dict[str, str], bytes]] = field(
        default_factory=list
    )
    begun: list[tuple[MessageType, int]] = field(default_factory=list)
    dropped: list[FrameDropped] = field(default_factory=list)
    partial: dict[tuple[MessageType, int], tuple[int, dict[str, str], bytearray]] = field(
        default_factory=dict
    )

    def absorb(self, core: BlipCore, events: list[Event], *, release: bool = True) -> None:
        for event in events:
            if isinstance(event, MessageReceived):
                self.begun.append((event.type, event.number))
                self.complete.append(
                    (event.type, event.number, event.flags, event.properties, event.body)
                )
            elif isinstance(event, MessageBegun):
                self.begun.append((event.type, event.number))
                self.partial[event.type, event.number] = (
                    event.flags,
                    event.properties,
                    bytearray(),
                )
            elif isinstance(event, BodyReceived):
                self.partial[event.type, event.number][2].extend(event.data)
                if release:
                    core.release(event.type, event.number, event.credit)
            elif isinstance(event, MessageEnded):
                flags, props, body = self.partial.pop((event.type, event.number))
                self.complete.append((event.type, event.number, flags, props, bytes(body)))
            else:
                self.dropped.append(event)


def transfer(sender: BlipCore, receiver: BlipCore, got: Received, max_frames: int = 64) -> int:
    """Move up to ``max_frames`` frames; return how many moved."""
    frames = sender.frames_to_send(max_frames=max_frames)
    for frame in frames:
        receiver.receive_frame(frame)
        got.absorb(receiver, receiver.events_received())
    return len(frames)
