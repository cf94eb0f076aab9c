"""Frame headers: message number and flags (spec §3.5)."""

from __future__ import annotations

import enum

from engine.blip.errors import FatalProtocolError
from engine.blip.varint import decode_varint, encode_varint

__all__ = [
    "ACK_TYPES",
    "CHECKSUM_SIZE",
    "COMPRESSED",
    "DATA_TYPES",
    "MORE_COMING",
    "NO_REPLY",
    "TYPE_MASK",
    "URGENT",
    "FrameFlags",
    "MessageType",
    "decode_header",
    "encode_header",
    "header_size",
]

#: Every frame but an ACK ends with a 4-byte big-endian CRC32.
CHECKSUM_SIZE = 4


class MessageType(enum.IntEnum):
    """The 3-bit type field of the frame flags."""

    MSG = 0x00
    RPY = 0x01
    ERR = 0x02
    ACKMSG = 0x04
    ACKRPY = 0x05

    @property
    def is_ack(self) -> bool:
        return self in ACK_TYPES

    @property
    def is_response(self) -> bool:
        return self is MessageType.RPY or self is MessageType.ERR


class FrameFlags(enum.IntFlag):
    """Frame flag bits (spec §3.5)."""

    TYPE_MASK = 0x07
    COMPRESSED = 0x08
    URGENT = 0x10
    NO_REPLY = 0x20
    MORE_COMING = 0x40


ACK_TYPES = frozenset({MessageType.ACKMSG, MessageType.ACKRPY})

# Plain-int copies for the per-frame path, where IntFlag arithmetic is slow.
TYPE_MASK = 0x07
COMPRESSED = 0x08
URGENT = 0x10
NO_REPLY = 0x20
MORE_COMING = 0x40
#: MessageType by type bits, for the data types (MSG, RPY, ERR).
DATA_TYPES = (MessageType.MSG, MessageType.RPY, MessageType.ERR)


def encode_header(number: int, flags: int) -> bytes:
    """The varint message number followed by the varint flags."""
    if flags < 0x80:
        if number < 0x80:
            return bytes((number, flags))
        if number < 0x4000:
            return bytes(((number & 0x7F) | 0x80, number >> 7, flags))
    return encode_varint(number) + encode_varint(flags)


def header_size(number: int, flags: int) -> int:
    """Length of the encoded header."""
    if number < 0x80 and flags < 0x80:
        return 2
    return len(encode_header(number, flags))


def decode_header(frame: bytes | bytearray | memoryview) -> tuple[int, int, int]:
    """Return (message number, flags, offset of the frame body)."""
    size = len(frame)
    if not size:
        raise FatalProtocolError("empty frame")
    number = frame[0]
    pos = 1
    if number >= 0x80:
        number, pos = decode_varint(frame, 0)
    if pos >= size:
        raise FatalProtocolError("frame has no flags")
    flags = frame[pos]
    if flags < 0x80:
        return number, flags, pos + 1
    flags, pos = decode_varint(frame, pos)
    return number, flags, pos
