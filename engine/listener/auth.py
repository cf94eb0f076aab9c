"""Listener authenticators (HTTP Basic, client certificates) and failure throttling."""

from __future__ import annotations

import base64
import binascii
import hmac
import inspect
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from engine.tls.certificates import CertificateInput

__all__ = [
    "CertificateCallback",
    "FailureThrottle",
    "ListenerCertificateAuthenticator",
    "ListenerPasswordAuthenticator",
    "PasswordCallback",
    "check_password",
    "fixed_credentials",
    "parse_basic_authorization",
]

#: ``callback(username, password) -> bool`` (sync or async).
PasswordCallback = Callable[[str, str], bool | Awaitable[bool]]
#: ``callback(chain_der) -> bool`` (sync or async); the chain is DER bytes, leaf first.
CertificateCallback = Callable[[list[bytes]], bool | Awaitable[bool]]


class FailureThrottle:
    """Exponential delay per source address after failed authentications, capped.

    ``delay(address)`` is 0 with no recent failure, then ``base``, ``2*base``, ... up to
    ``cap`` seconds; an address is forgotten ``forget_after`` seconds after its last
    failure, and on success.
    """

    def __init__(
        self,
        base: float = 0.25,
        cap: float = 5.0,
        forget_after: float = 600.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_addresses: int = 10_000,
    ) -> None:
        if base < 0 or cap < base or forget_after <= 0 or max_addresses <= 0:
            raise ValueError("need 0 <= base <= cap, forget_after > 0 and max_addresses > 0")
        self.base = base
        self.cap = cap
        self.forget_after = forget_after
        self.clock = clock
        self.max_addresses = max_addresses
        self._failures: dict[str, tuple[int, float]] = {}

    def failures(self, address: str) -> int:
        """Recent failures from ``address``."""
        entry = self._failures.get(address)
        if entry is None:
            return 0
        if self.clock() - entry[1] >= self.forget_after:
            del self._failures[address]
            return 0
        return entry[0]

    def delay(self, address: str) -> float:
        """Seconds to wait before answering the next attempt from ``address``."""
        count = self.failures(address)
        if count == 0:
            return 0.0
        return float(min(self.cap, self.base * 2 ** min(count - 1, 62)))

    def failed(self, address: str) -> None:
        if address not in self._failures and len(self._failures) >= self.max_addresses:
            self._prune()
        self._failures[address] = (self.failures(address) + 1, self.clock())

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)

    def _prune(self) -> None:
        now = self.clock()
        for address, (_, last) in list(self._failures.items()):
            if now - last >= self.forget_after:
                del self._failures[address]
        while len(self._failures) >= self.max_addresses:  # still full: drop the oldest
            del self._failures[min(self._failures, key=lambda a: self._failures[a][1])]


@dataclass
class ListenerPasswordAuthenticator:
    """HTTP Basic authentication: ``callback(username, password) -> bool`` (sync or async)."""

    callback: PasswordCallback
    throttle: FailureThrottle = field(default_factory=FailureThrottle)

    async def check(self, username: str, password: str) -> bool:
        result = self.callback(username, password)
        if inspect.isawaitable(result):
            result = await result
        return bool(result)


@dataclass
class ListenerCertificateAuthenticator:
    """Clients must present a TLS certificate.

    With ``root_certs`` it must be issued by (or equal to) one of them, checked in the TLS
    handshake. ``callback(chain_der) -> bool`` (sync or async) then decides on the chain
    (leaf first); with a callback alone, any certificate passes TLS and the callback alone
    decides, as in Couchbase Lite (validity dates are then the callback's business too).
    """

    root_certs: Sequence[CertificateInput] = ()
    callback: CertificateCallback | None = None
    throttle: FailureThrottle = field(default_factory=FailureThrottle)

    def __post_init__(self) -> None:
        if not self.root_certs and self.callback is None:
            raise ValueError("ListenerCertificateAuthenticator needs root_certs or a callback")

    async def check(self, chain: list[bytes]) -> bool:
        if self.callback is None:
            return bool(chain)
        result = self.callback(chain)
        if inspect.isawaitable(result):
            result = await result
        return bool(result)


def check_password(expected: str, given: str) -> bool:
    """Constant-time comparison of two strings (as UTF-8)."""
    return hmac.compare_digest(expected.encode(), given.encode())


def fixed_credentials(username: str, password: str) -> Callable[[str, str], bool]:
    """A password callback accepting exactly one user and password (constant-time)."""

    def callback(user: str, given: str) -> bool:
        # Both comparisons always run, so timing does not reveal which one failed.
        user_ok = check_password(username, user)
        password_ok = check_password(password, given)
        return user_ok and password_ok

    return callback


def parse_basic_authorization(header: str | None) -> tuple[str, str] | None:
    """``(username, password)`` from an ``Authorization: Basic ...`` header, else None."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic" or not token.strip():
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, sep, password = decoded.partition(":")
    if not sep:
        return None
    return username, password
