"""BLIP 3: Couchbase Mobile's message protocol over WebSocket (sans-I/O core, asyncio adapter)."""

from __future__ import annotations

from engine.blip.client import BLIP_SUBPROTOCOL, connect
from engine.blip.codec import DecodedFrame, FrameDecoder, FrameEncoder
from engine.blip.connection import BlipConnection
from engine.blip.core import BlipCore, CoreState
from engine.blip.errors import (
    BLIP_DOMAIN,
    BlipError,
    BlipErrorCode,
    ChecksumError,
    CompressionError,
    ConnectionClosedError,
    FatalProtocolError,
    FrameError,
    LimitExceededError,
    LocalProtocolError,
    RemoteProtocolError,
)
from engine.blip.events import (
    BodyReceived,
    Event,
    FrameDropped,
    MessageBegun,
    MessageEnded,
    MessageReceived,
)
from engine.blip.frame import FrameFlags, MessageType
from engine.blip.incoming import BodyStream, Handler, IncomingRequest, OutgoingReply, Response
from engine.blip.limits import BlipLimits
from engine.blip.message import OutgoingMessage
from engine.blip.outbox import FRAME_SIZE, MAX_UNACKED, URGENT_FRAME_SIZE
from engine.blip.properties import decode_properties, encode_properties
from engine.blip.reassembly import ACK_INTERVAL
from engine.blip.server import serve
from engine.blip.varint import decode_varint, encode_varint

__all__ = [
    "ACK_INTERVAL",
    "BLIP_DOMAIN",
    "BLIP_SUBPROTOCOL",
    "FRAME_SIZE",
    "MAX_UNACKED",
    "URGENT_FRAME_SIZE",
    "BlipConnection",
    "BlipCore",
    "BlipError",
    "BlipErrorCode",
    "BlipLimits",
    "BodyReceived",
    "BodyStream",
    "ChecksumError",
    "CompressionError",
    "ConnectionClosedError",
    "CoreState",
    "DecodedFrame",
    "Event",
    "FatalProtocolError",
    "FrameDecoder",
    "FrameDropped",
    "FrameEncoder",
    "FrameError",
    "FrameFlags",
    "Handler",
    "IncomingRequest",
    "LimitExceededError",
    "LocalProtocolError",
    "MessageBegun",
    "MessageEnded",
    "MessageReceived",
    "MessageType",
    "OutgoingMessage",
    "OutgoingReply",
    "RemoteProtocolError",
    "Response",
    "connect",
    "decode_properties",
    "decode_varint",
    "encode_properties",
    "encode_varint",
    "serve",
]
