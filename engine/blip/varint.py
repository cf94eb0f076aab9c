"""Unsigned LEB128 varints, as BLIP uses for numbers, flags and lengths (spec §3.4, §3.5)."""

from __future__ import annotations

from engine.blip.errors import FatalProtocolError

__all__ = ["MAX_VARINT_BYTES", "decode_varint", "encode_varint", "varint_complete"]

#: A 64-bit value never needs more than ten bytes.
MAX_VARINT_BYTES = 10

_SMALL = [bytes((n,)) for n in range(0x80)]


def encode_varint(value: int) -> bytes:
    """Encode a non-negative integer below 2**64."""
    if 0 <= value < 0x80:
        return _SMALL[value]
    if 0 < value < 0x4000:
        return bytes(((value & 0x7F) | 0x80, value >> 7))
    if value < 0 or value >= 1 << 64:
        raise ValueError(f"varint out of range: {value}")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varint(data: bytes | bytearray | memoryview, pos: int = 0) -> tuple[int, int]:
    """Decode the varint at ``pos``; return (value, position after it)."""
    # A cut-off or overlong varint is a fatal error (spec §3.8).
    end = len(data)
    if pos >= end:
        raise FatalProtocolError("missing varint")
    byte = data[pos]
    if byte < 0x80:
        return byte, pos + 1
    value = byte & 0x7F
    shift = 7
    for index in range(pos + 1, min(end, pos + MAX_VARINT_BYTES)):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if value >= 1 << 64:
                break
            return value, index + 1
        shift += 7
    else:
        if end - pos < MAX_VARINT_BYTES:
            raise FatalProtocolError("varint cut off at the end of the frame")
    raise FatalProtocolError("varint longer than 64 bits")


def varint_complete(data: bytes | bytearray | memoryview, pos: int = 0) -> bool:
    """Whether ``data`` holds a whole varint (or enough bytes to reject it) at ``pos``."""
    for index in range(pos, min(len(data), pos + MAX_VARINT_BYTES)):
        if data[index] < 0x80:
            return True
    return len(data) - pos >= MAX_VARINT_BYTES
