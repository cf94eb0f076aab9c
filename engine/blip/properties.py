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
    strings = [text for pair in properties.items() for text in pair]
    try:
        joined = "\x00".join(strings)
    except TypeError:
        raise LocalProtocolError("property keys and values must be str") from None
    if joined.count("\x00") != len(strings) - 1:
        raise LocalProtocolError("a property key or value contains a NUL character")
    encoded = joined.encode() + b"\x00"
    return encode_varint(len(encoded)) + encoded


def decode_properties(data: bytes | bytearray | memoryview) -> dict[str, str]:
    """Decode the property strings (without the length prefix)."""
    if not data:
        return {}
    raw = data if type(data) is bytes else bytes(data)
    cached = _cache.get(raw)
    if cached is not None:
        return dict(cached)
    # Each of these is a frame error (spec §3.8).
    if raw[-1] != 0:
        raise FrameError("property data does not end with NUL")
    try:
        strings = raw[:-1].decode("utf-8").split("\x00")
    except UnicodeDecodeError as exc:
        raise FrameError(f"property string is not valid UTF-8: {exc.reason}") from None
    if len(strings) % 2:
        raise FrameError("property data has an odd number of strings")
    pairs = iter(strings)
    properties = dict(zip(pairs, pairs, strict=True))
    if len(raw) <= _CACHED_SIZE:
        # Short blocks ("Profile\0rev\0", empty replies' friends) repeat all the time.
        if len(_cache) >= _CACHE_ENTRIES:
            _cache.clear()
        _cache[raw] = properties
        return dict(properties)
    return properties


_CACHED_SIZE = 48
_CACHE_ENTRIES = 512
_cache: dict[bytes, dict[str, str]] = {}
