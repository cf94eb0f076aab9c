"""Message properties: NUL-terminated UTF-8 keys and values after a varint length (spec §3.4)."""

from __future__ import annotations

from collections.abc import Mapping

from engine.blip.errors import FrameError, LocalProtocolError
from engine.blip.varint import encode_varint

__all__ = ["decode_properties", "encode_properties"]

_EMPTY = b"\x00"


def encode_properties(properties: Mapping[str, str] | None) -> bytes:
    """The varint length (written even when zero) and the key/value strings."""
    if not properties:
        return _EMPTY
    parts: list[bytes] = []
    for key, value in properties.items():
        for text in (key, value):
            if not isinstance(text, str):
                raise LocalProtocolError(f"property {key!r}: keys and values must be str")
            if "\x00" in text:
                raise LocalProtocolError(f"property {key!r} contains a NUL character")
            parts.append(text.encode())
    parts.append(b"")
    encoded = b"\x00".join(parts)
    return encode_varint(len(encoded)) + encoded


def decode_properties(data: bytes | bytearray | memoryview) -> dict[str, str]:
    """Decode the property strings (without the length prefix)."""
    if not data:
        return {}
    raw = bytes(data)
    # Each of these is a frame error (spec §3.8).
    if raw[-1] != 0:
        raise FrameError("property data does not end with NUL")
    try:
        strings = raw[:-1].decode("utf-8").split("\x00")
    except UnicodeDecodeError as exc:
        raise FrameError(f"property string is not valid UTF-8: {exc.reason}") from None
    if len(strings) % 2:
        raise FrameError("property data has an odd number of strings")
    return dict(zip(strings[::2], strings[1::2], strict=True))
