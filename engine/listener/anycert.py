"""Ask for a client certificate and accept any at the TLS layer (callback authentication).

Couchbase Lite's ``ListenerCertificateAuthenticator(callback)`` lets the application
judge certificates no CA vouches for. Python's ``ssl`` has no verification hook, so this
module installs an accept-all OpenSSL verify callback through ``ctypes`` on the context's
``SSL_CTX``; the listener then calls the application's callback on the presented chain
during the HTTP handshake. The ``SSL_CTX`` pointer is located in CPython's ``PySSLContext``
(right after the object header) and checked against the context's own options and verify
mode before use; anything unexpected raises :class:`NotImplementedError`.
"""

from __future__ import annotations

import ctypes
import ssl
import sys
import sysconfig
from typing import Any

__all__ = ["accept_any_client_certificate"]

_SSL_VERIFY_PEER = 0x01
_SSL_VERIFY_FAIL_IF_NO_PEER_CERT = 0x02
_REQUIRED = _SSL_VERIFY_PEER | _SSL_VERIFY_FAIL_IF_NO_PEER_CERT

_VerifyCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)


def _accept(preverify_ok: int, store_ctx: int | None) -> int:
    return 1  # the listener's callback decides after the handshake


# Kept alive for the life of the process: OpenSSL holds a raw pointer to it.
_ACCEPT = _VerifyCallback(_accept)
_lib: Any = None


def _libssl() -> Any:
    global _lib
    if _lib is None:
        import _ssl

        path = getattr(_ssl, "__file__", None)  # its libssl, not whichever is on the path
        lib = ctypes.CDLL(path) if path else ctypes.CDLL(None)
        try:
            lib.SSL_CTX_set_verify.argtypes = [ctypes.c_void_p, ctypes.c_int, _VerifyCallback]
            lib.SSL_CTX_set_verify.restype = None
            lib.SSL_CTX_get_verify_mode.argtypes = [ctypes.c_void_p]
            lib.SSL_CTX_get_verify_mode.restype = ctypes.c_int
            lib.SSL_CTX_get_options.argtypes = [ctypes.c_void_p]
            lib.SSL_CTX_get_options.restype = ctypes.c_uint64
        except AttributeError as exc:
            raise NotImplementedError(f"OpenSSL's functions are not reachable: {exc}") from None
        _lib = lib
    return _lib


def _unsupported(why: str) -> NotImplementedError:
    return NotImplementedError(
        f"client-certificate callbacks without root_certs are not supported here ({why}); "
        "pass root_certs (the client CAs or the clients' self-signed certificates)"
    )


def accept_any_client_certificate(context: ssl.SSLContext) -> None:
    """Make the server ``context`` require a client certificate but accept any."""
    if sys.implementation.name != "cpython" or not (3, 11) <= sys.version_info[:2] <= (3, 13):
        raise _unsupported(f"needs CPython 3.11-3.13, this is {sys.version.split()[0]}")
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        raise _unsupported("free-threaded CPython")
    lib = _libssl()
    context.verify_mode = ssl.CERT_REQUIRED
    pointer = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
    if not pointer:
        raise _unsupported("no SSL_CTX found")
    # The pointer must be this context's: same options and verify mode as Python reports.
    if lib.SSL_CTX_get_options(pointer) != int(context.options) or (
        lib.SSL_CTX_get_verify_mode(pointer) != _REQUIRED
    ):
        raise _unsupported("unexpected ssl.SSLContext layout")
    lib.SSL_CTX_set_verify(pointer, _REQUIRED, _ACCEPT)
