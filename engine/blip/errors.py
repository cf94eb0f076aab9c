"""The BLIP exception tree, hung under :class:`engine.errors.PeerbaseError`::

    PeerbaseError
     └── BlipError                        an ERR reply (domain, code, message); base of all below
          ├── ConnectionClosedError       the WebSocket closed first (code, reason, by_peer)
          ├── LocalProtocolError          this side misused the API (also ValueError)
          └── RemoteProtocolError         the peer broke the protocol (spec §3.8)
               ├── FrameError             a frame error: that frame is dropped, the connection lives
               └── FatalProtocolError     a fatal error: the connection is closed (close_code)
                    ├── ChecksumError     a frame's CRC32 does not match the running checksum
                    ├── CompressionError  invalid deflate data in a compressed frame
                    └── LimitExceededError  a frame, message or properties block is too large
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from engine.errors import PeerbaseError

__all__ = [
    "BLIP_DOMAIN",
    "BlipError",
    "BlipErrorCode",
    "ChecksumError",
    "CompressionError",
    "ConnectionClosedError",
    "FatalProtocolError",
    "FrameError",
    "LimitExceededError",
    "LocalProtocolError",
    "RemoteProtocolError",
]

#: The error domain of BLIP itself (spec §1.2).
BLIP_DOMAIN = "BLIP"


class BlipErrorCode(enum.IntEnum):
    """Error codes of the BLIP domain: HTTP statuses (spec §1.2)."""

    BAD_REQUEST = 400
    FORBIDDEN = 403
    NOT_FOUND = 404
    BAD_RANGE = 416
    HANDLER_FAILED = 501
    UNSPECIFIED = 599


class BlipError(PeerbaseError):
    """An error reply from the peer, or any other BLIP failure."""

    def __init__(
        self,
        domain: str = BLIP_DOMAIN,
        code: int = BlipErrorCode.UNSPECIFIED,
        message: str = "",
        *,
        properties: Mapping[str, str] | None = None,
        hint: str | None = None,
    ) -> None:
        self.domain = domain
        self.code = int(code)
        self.message = message
        #: Extra properties of the ERR reply, beyond Error-Domain and Error-Code.
        self.properties: dict[str, str] = dict(properties or {})
        text = f"{domain} error {self.code}"
        super().__init__(f"{text}: {message}" if message else text, hint=hint)


class ConnectionClosedError(BlipError):
    """The connection closed before the operation could complete."""

    hint = "reconnect and try again"

    def __init__(self, code: int | None, reason: str = "", *, by_peer: bool = False) -> None:
        self.close_code = code
        self.close_reason = reason
        self.by_peer = by_peer
        who = "peer" if by_peer else "this side"
        text = f"connection closed by {who} (code {code}{', ' + reason if reason else ''})"
        super().__init__("WebSocket", code if code is not None else 1006, text)


class LocalProtocolError(BlipError, ValueError):
    """This side asked for something BLIP cannot do (a caller bug)."""

    def __init__(self, message: str) -> None:
        super().__init__(BLIP_DOMAIN, BlipErrorCode.BAD_REQUEST, message)


class RemoteProtocolError(BlipError):
    """The peer sent data that breaks the BLIP protocol."""

    def __init__(self, message: str) -> None:
        super().__init__(BLIP_DOMAIN, BlipErrorCode.BAD_REQUEST, message)


class FrameError(RemoteProtocolError):
    """A frame error of spec §3.8: the frame is ignored."""


class FatalProtocolError(RemoteProtocolError):
    """A fatal error of spec §3.8: the connection must be closed."""

    #: WebSocket close code to use: 1002 protocol error.
    close_code: int = 1002
    hint = "the peer is not speaking BLIP 3 correctly; check its version"


class ChecksumError(FatalProtocolError):
    """A frame's CRC32 does not match the running input checksum."""


class CompressionError(FatalProtocolError):
    """A compressed frame holds invalid deflate data."""


class LimitExceededError(FatalProtocolError):
    """A frame, message or properties block exceeds a configured limit."""

    close_code = 1009
    hint = "raise the limit in BlipLimits if the peer is trusted"
