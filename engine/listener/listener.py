"""`URLEndpointListener`: the passive peer, serving one database over BLIP/WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import errno
import http
import itertools
import logging
import socket
import ssl
import threading
import weakref
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import orjson
from websockets.asyncio.server import Server, ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from engine import blip
from engine.blip import BLIP_SUBPROTOCOL, BlipConnection, IncomingRequest, OutgoingReply
from engine.listener.anycert import accept_any_client_certificate
from engine.listener.auth import (
    ListenerCertificateAuthenticator,
    ListenerPasswordAuthenticator,
    parse_basic_authorization,
)
from engine.listener.config import URLEndpointListenerConfiguration
from engine.listener.errors import ListenerError, ListenerStateError, PortInUseError
from engine.listener.events import (
    CertificateInfo,
    ConnectionClosed,
    ConnectionOpened,
    ConnectionRefused,
    EventCallback,
    EventHub,
    EventToken,
    IdentityExpiring,
    ListenerEvent,
    ReplicationDirection,
)
from engine.listener.interfaces import (
    InterfaceAddress,
    interface_addresses,
    resolve_interface,
    url_host,
)
from engine.replication import ReplicationSession, SessionEvents, SessionOptions, server_header
from engine.tls import IdentityExpiredError, TLSIdentity, fingerprint, peer_certificate_chain

__all__ = ["ConnectionInfo", "ListenerStatus", "URLEndpointListener"]

log = logging.getLogger(__name__)

#: Seconds stop() gives connections to finish their closing handshake.
STOP_TIMEOUT = 2.0
#: websockets' close_timeout: how long to wait for the peer's close frame.
CLOSE_TIMEOUT = 1.0
#: What each request profile says about the peer's direction.
DIRECTIONS = {
    "subChanges": "pull",
    "changes": "push",
    "proposeChanges": "push",
    "rev": "push",
}


@dataclass(frozen=True)
class ListenerStatus:
    """Connections open, and how many of them are replicating right now."""

    connection_count: int
    active_connection_count: int


@dataclass(frozen=True)
class ConnectionInfo:
    """A snapshot of one open connection."""

    connection_id: int
    peer_address: str
    user: str | None
    certificate: CertificateInfo | None
    directions: tuple[str, ...]
    busy: bool


@dataclass
class _Admission:
    """What the handshake learnt about a peer, handed from process_request to the handler."""

    user: str | None = None
    certificate: CertificateInfo | None = None


@dataclass(eq=False)
class _Peer:
    connection_id: int
    address: str
    conn: BlipConnection
    admission: _Admission
    session: ReplicationSession | None = None
    directions: list[str] = field(default_factory=list)
    watcher: asyncio.Task[None] | None = None

    def info(self) -> ConnectionInfo:
        return ConnectionInfo(
            self.connection_id,
            self.address,
            self.admission.user,
            self.admission.certificate,
            tuple(self.directions),
            self.session is not None and self.session.busy,
        )


class URLEndpointListener:
    """Accepts replications of the configured collections from active peers."""

    def __init__(self, config: URLEndpointListenerConfiguration) -> None:
        self.config = config
        self._servers: list[Server] = []
        self._port = 0
        self._urls: list[str] = []
        self._identity: TLSIdentity | None = None
        self._peers: dict[int, _Peer] = {}
        self._admitted: weakref.WeakKeyDictionary[ServerConnection, _Admission] = (
            weakref.WeakKeyDictionary()
        )
        self._ids = itertools.count(1)
        self._hub = EventHub()
        self._starting = False
        #: The TLS identity's expiry warning (expires within 30 days), else None.
        self.expiry_warning: str | None = None

    # -- public API -----------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port listened on (the real one after port 0), 0 when stopped."""
        return self._port

    @property
    def urls(self) -> list[str]:
        """One ``ws://`` or ``wss://`` URL per usable address, path ``/<db name>``."""
        return list(self._urls)

    @property
    def tls_identity(self) -> TLSIdentity | None:
        """The identity served; None when stopped or with TLS disabled."""
        return self._identity

    @property
    def running(self) -> bool:
        return bool(self._servers)

    @property
    def status(self) -> ListenerStatus:
        peers = list(self._peers.values())
        busy = sum(1 for p in peers if p.session is not None and p.session.busy)
        return ListenerStatus(len(peers), busy)

    @property
    def connections(self) -> list[ConnectionInfo]:
        return [peer.info() for peer in self._peers.values()]

    def add_event_listener(self, callback: EventCallback) -> EventToken:
        """``callback(ListenerEvent)`` for every event, on the event loop; ``.remove()``."""
        return self._hub.add(callback)

    def events(self) -> AsyncIterator[ListenerEvent]:
        """``async for event in listener.events()``: every event from now on."""
        return self._hub.stream()

    async def start(self) -> None:
        """Bind, load the TLS identity and start accepting connections."""
        if self._servers or self._starting:
            raise ListenerStateError("the listener is already running")
        self._starting = True
        try:
            await self._start()
        finally:
            self._starting = False

    async def stop(self) -> None:
        """Close every connection (WebSocket 1001) and stop listening; idempotent."""
        servers, self._servers = self._servers, []
        if not servers:
            return
        for server in servers:
            server.close(close_connections=False)
        peers = list(self._peers.values())
        closing = [
            asyncio.ensure_future(peer.conn.close(1001, "listener stopped")) for peer in peers
        ]
        if closing:
            _, pending = await asyncio.wait(closing, timeout=STOP_TIMEOUT)
            for task in pending:
                task.cancel()
            for peer in peers:
                if not peer.conn.closed:
                    peer.conn.websocket.transport.abort()
        watchers = [p.watcher for p in peers if p.watcher is not None]
        if watchers:
            await asyncio.wait(watchers, timeout=STOP_TIMEOUT)
        for server in servers:
            server.close()  # handshakes still in progress
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(s.wait_closed() for s in servers)), STOP_TIMEOUT
            )
        self._port = 0
        self._urls = []
        self._identity = None

    # -- starting -------------------------------------------------------------------------

    async def _start(self) -> None:
        cfg = self.config
        bind = resolve_interface(cfg.network_interface)
        context, identity = await self._tls_context()
        sockets = _bind(bind, cfg.port)
        try:
            for sock in sockets:
                server = await blip.serve(
                    self._on_connection,
                    None,
                    None,  # type: ignore[arg-type]  # the socket is given instead
                    sock=sock,
                    ssl=context,
                    process_request=self._process_request,
                    open_timeout=cfg.open_timeout,
                    close_timeout=CLOSE_TIMEOUT,
                    server_header=server_header(self._session_options()),
                )
                self._servers.append(server)
        except BaseException:
            for server in self._servers:
                server.close()
            self._servers = []
            for sock in sockets:
                sock.close()
            raise
        self._port = sockets[0].getsockname()[1]
        self._identity = identity
        dual_stack = bind is None and sockets[0].family == socket.AF_INET6
        self._urls = self._make_urls(bind, dual_stack, context is not None)
        log.info("listening on %s", ", ".join(self._urls))

    async def _tls_context(self) -> tuple[ssl.SSLContext | None, TLSIdentity | None]:
        cfg = self.config
        if cfg.disable_tls:
            return None, None
        identity = cfg.tls_identity
        if identity is None:
            identity = await asyncio.to_thread(_anonymous_identity)
        if identity.is_expired:
            raise IdentityExpiredError(
                f"TLS identity {identity.label!r} expired on {identity.expiration:%Y-%m-%d}; "
                "the listener cannot serve it"
            )
        self.expiry_warning = identity.expiry_warning()
        if self.expiry_warning:
            self._hub.emit(
                IdentityExpiring.of(identity.label, identity.expiration, self.expiry_warning)
            )
        auth = cfg.authenticator
        if not isinstance(auth, ListenerCertificateAuthenticator):
            return identity.server_ssl_context(), identity
        if not auth.root_certs:
            context = identity.server_ssl_context()
            accept_any_client_certificate(context)
            return context, identity
        roots = list(auth.root_certs)
        return identity.server_ssl_context(
            require_client_cert=True, client_ca_certs=roots
        ), identity

    def _make_urls(
        self, bind: Sequence[InterfaceAddress] | None, dual_stack: bool, tls: bool
    ) -> list[str]:
        if bind is None:
            found = [a for a in interface_addresses() if a.usable]
            if not dual_stack:
                found = [a for a in found if a.family == socket.AF_INET]
            found.sort(key=lambda a: (a.ip.is_loopback, a.ip.version))
        else:
            found = list(bind)
        scheme = "wss" if tls else "ws"
        path = quote(self.config.database.name, safe="")
        urls: list[str] = []
        for address in found:
            url = f"{scheme}://{url_host(address.address)}:{self._port}/{path}"
            if url not in urls:
                urls.append(url)
        return urls

    # -- the handshake --------------------------------------------------------------------

    async def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        address = _peer_address(ws)
        path = urlsplit(request.path).path
        parts = path.split("/")
        db_name = self.config.database.name
        if not (
            len(parts) in (2, 3)
            and unquote(parts[1]) == db_name
            and (len(parts) == 2 or parts[2] in ("", "_blipsync"))
        ):
            return self._refuse(address, request, 404, f"no database at {path!r}")
        offered = [
            p.strip()
            for value in request.headers.get_all("Sec-WebSocket-Protocol")
            for p in value.split(",")
        ]
        if BLIP_SUBPROTOCOL not in offered:
            return self._refuse(
                address,
                request,
                400,
                f"a Couchbase Mobile replicator must offer the WebSocket subprotocol "
                f"{BLIP_SUBPROTOCOL} (offered: {', '.join(offered) or 'none'})",
            )
        admission = _Admission()
        auth = self.config.authenticator
        if isinstance(auth, ListenerPasswordAuthenticator):
            delay = auth.throttle.delay(address)
            if delay:
                await asyncio.sleep(delay)
            credentials = _basic_credentials(request)
            ok = credentials is not None and await auth.check(*credentials)
            if not ok:
                auth.throttle.failed(address)
                why = "wrong credentials" if credentials else "no credentials"
                return self._refuse(address, request, 401, why, unauthorized=True)
            auth.throttle.succeeded(address)
            assert credentials is not None
            admission.user = credentials[0]
        elif isinstance(auth, ListenerCertificateAuthenticator):
            ssl_object = ws.transport.get_extra_info("ssl_object")
            chain = peer_certificate_chain(ssl_object) if ssl_object is not None else []
            delay = auth.throttle.delay(address)
            if delay:
                await asyncio.sleep(delay)
            if not chain or not await auth.check(chain):
                auth.throttle.failed(address)
                return self._refuse(
                    address, request, 401, "client certificate refused", unauthorized=True
                )
            auth.throttle.succeeded(address)
            admission.certificate = _certificate_info(chain[0])
        self._admitted[ws] = admission
        return None

    def _refuse(
        self,
        address: str,
        request: Request,
        status: int,
        reason: str,
        *,
        unauthorized: bool = False,
    ) -> Response:
        self._hub.emit(ConnectionRefused(address, status, reason, urlsplit(request.path).path))
        if unauthorized:
            # Exactly what Couchbase Lite answers.
            return _json_response(401, {"status": 401, "error": "Unauthorized"}, [_BASIC_CHALLENGE])
        phrase = http.HTTPStatus(status).phrase
        return _json_response(status, {"status": status, "error": phrase, "reason": reason})

    # -- connections ----------------------------------------------------------------------

    def _session_options(self) -> SessionOptions:
        cfg = self.config
        return SessionOptions(read_only=cfg.read_only, delta_sync=cfg.enable_delta_sync)

    async def _on_connection(self, conn: BlipConnection) -> None:
        ws = conn.websocket
        assert isinstance(ws, ServerConnection)
        admission = self._admitted.pop(ws, None) or _Admission()
        peer = _Peer(next(self._ids), _peer_address(ws), conn, admission)
        conn.name = f"listener#{peer.connection_id} {peer.address}"
        cfg = self.config
        with _observing(conn, lambda direction: self._saw_direction(peer, direction)):
            peer.session = ReplicationSession(
                conn,
                cfg.database,
                active=False,
                collections=cfg.collections,
                options=self._session_options(),
                events=SessionEvents(),
            )
        self._peers[peer.connection_id] = peer
        peer.watcher = asyncio.create_task(self._watch(peer), name=f"watch {conn.name}")
        self._hub.emit(
            ConnectionOpened(
                peer.connection_id, peer.address, admission.user, admission.certificate
            )
        )

    def _saw_direction(self, peer: _Peer, direction: str) -> None:
        if direction not in peer.directions:
            peer.directions.append(direction)
            self._hub.emit(ReplicationDirection(peer.connection_id, peer.address, direction))

    async def _watch(self, peer: _Peer) -> None:
        conn, session = peer.conn, peer.session
        assert session is not None
        try:
            closed = asyncio.ensure_future(conn.wait_closed())
            waiters: list[asyncio.Future[Any]] = [closed, session.error]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            if not closed.done():
                log.warning("replication with %s failed: %r", peer.address, session.error.result())
                await conn.close(1011, "replication failed")
            await closed
            await session.close()
        except Exception:
            log.exception("closing the connection with %s failed", peer.address)
        finally:
            self._peers.pop(peer.connection_id, None)
            self._hub.emit(
                ConnectionClosed(
                    peer.connection_id,
                    peer.address,
                    peer.admission.user,
                    peer.admission.certificate,
                    tuple(peer.directions),
                    conn.close_code,
                    conn.close_reason,
                    conn.closed_by_peer,
                    docs_received=session.stats.docs_pulled,
                    docs_sent=session.stats.docs_pushed,
                )
            )


# -- helpers ------------------------------------------------------------------------------

#: Listeners starting at once must not each create (and overwrite) the anonymous identity.
_ANONYMOUS_LOCK = threading.Lock()


def _anonymous_identity() -> TLSIdentity:
    with _ANONYMOUS_LOCK:
        return TLSIdentity.get_or_create_anonymous()


_BASIC_CHALLENGE = ("WWW-Authenticate", 'Basic charset="UTF-8"')


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    return parse_basic_authorization(request.headers.get("Authorization"))


def _json_response(
    status: int, body: dict[str, Any], extra: Sequence[tuple[str, str]] = ()
) -> Response:
    data = orjson.dumps(body)
    headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Length", str(len(data))),
            ("Content-Type", "application/json"),
            *extra,
        ]
    )
    return Response(status, http.HTTPStatus(status).phrase, headers, data)


def _peer_address(ws: ServerConnection) -> str:
    remote = ws.remote_address
    host = str(remote[0]) if remote else "unknown"
    if host.startswith("::ffff:") and "." in host:
        host = host[len("::ffff:") :]
    return host


def _certificate_info(der: bytes) -> CertificateInfo:
    from engine.tls import load_certificate

    cert = load_certificate(der)
    return CertificateInfo(cert.subject.rfc4514_string(), fingerprint(cert))


@contextlib.contextmanager
def _observing(conn: BlipConnection, seen: Any) -> Iterator[None]:
    """While active, handlers registered on ``conn`` first report the peer's direction."""
    original = conn.register_handler

    def register(profile: str, handler: blip.Handler, *, streaming: bool = False) -> None:
        direction = DIRECTIONS.get(profile)
        if direction is not None:
            inner = handler

            async def handler(request: IncomingRequest) -> OutgoingReply | None:
                seen(direction)
                return await inner(request)

        original(profile, handler, streaming=streaming)

    conn.register_handler = register  # type: ignore[method-assign]
    try:
        yield
    finally:
        del conn.register_handler


def _bind(bind: Sequence[InterfaceAddress] | None, port: int) -> list[socket.socket]:
    """Listening sockets: one dual-stack socket for all interfaces, else one per address.

    All on the same port (with port 0, the one the first socket was given).
    """
    targets: list[tuple[socket.AddressFamily, tuple[Any, ...]]]
    if bind is None:
        targets = [(socket.AF_INET6, ("::", port, 0, 0))] if socket.has_ipv6 else []
    else:
        targets = [
            (
                a.family,
                (a.address, port, 0, a.scope_id)
                if a.family == socket.AF_INET6
                else (a.address, port),
            )
            for a in bind
        ]
    sockets: list[socket.socket] = []
    try:
        if bind is None:
            try:
                sockets.append(_listen_socket(*targets[0], dual_stack=True))
            except (IndexError, OSError) as exc:
                if isinstance(exc, OSError) and exc.errno in (errno.EADDRINUSE, errno.EACCES):
                    raise
                sockets.append(_listen_socket(socket.AF_INET, ("0.0.0.0", port)))
        else:
            for family, address in targets:
                if sockets:
                    address = (address[0], sockets[0].getsockname()[1], *address[2:])
                sockets.append(_listen_socket(family, address))
    except OSError as exc:
        for sock in sockets:
            sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(port) from None
        if exc.errno == errno.EACCES:
            raise ListenerError(
                f"permission denied to listen on port {port}",
                hint="ports below 1024 need privileges; use a higher port or 0",
            ) from None
        raise ListenerError(f"cannot listen on port {port}: {exc}") from exc
    return sockets


def _listen_socket(
    family: socket.AddressFamily, address: tuple[Any, ...], *, dual_stack: bool = False
) -> socket.socket:
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP,
    # and accepted sockets inherit this one's. With proto 0, Nagle's algorithm held back
    # small replies for the peer's delayed ACK (push to a listener: 11-12k vs 16-17k docs/s).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if dual_stack:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
