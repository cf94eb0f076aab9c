"""`peerbase listen`: serve a database to replicators until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from pathlib import Path

from engine.cli.common import CLIError, get_collection, open_database, print_json
from engine.listener import (
    ConnectionClosed,
    ConnectionOpened,
    ConnectionRefused,
    IdentityExpiring,
    ListenerEvent,
    ListenerPasswordAuthenticator,
    ReplicationDirection,
    URLEndpointListener,
    URLEndpointListenerConfiguration,
    fixed_credentials,
)
from engine.store import Collection
from engine.tls import TLSIdentity

#: Read when --user is given without --password (keeps the password out of `ps`).
PASSWORD_ENV = "PEERBASE_LISTEN_PASSWORD"


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    listen = sub.add_parser(
        "listen",
        help="serve a database to replicators (passive peer)",
        description="Serve a database to Couchbase Lite compatible replicators until "
        "Ctrl-C or SIGTERM. Prints the URLs and the TLS fingerprint, then connection events.",
    )
    listen.add_argument("--db", required=True, type=Path, metavar="DIR", help="database directory")
    listen.add_argument(
        "--collection",
        action="append",
        metavar="SCOPE.NAME",
        help="collection to serve (repeatable; default: _default._default)",
    )
    listen.add_argument("--port", type=int, default=0, help="TCP port (default 0: any free one)")
    listen.add_argument(
        "--interface", metavar="X", help="interface name or IP address (default: all)"
    )
    listen.add_argument("--no-tls", action="store_true", help="serve plain ws:// (no TLS)")
    listen.add_argument(
        "--identity", metavar="LABEL", help="TLS identity (default: the anonymous one)"
    )
    listen.add_argument("--user", help="require HTTP Basic authentication as this user")
    listen.add_argument("--password", help=f"the user's password (default: ${PASSWORD_ENV})")
    listen.add_argument("--read-only", action="store_true", help="refuse pushes from peers")
    listen.add_argument("--delta-sync", action="store_true", help="enable delta sync")
    listen.add_argument("--json", action="store_true", help="one JSON object per line")
    listen.set_defaults(handler=cmd_listen)


def _config(
    args: argparse.Namespace, collections: list[Collection]
) -> URLEndpointListenerConfiguration:
    password = args.password if args.password is not None else os.environ.get(PASSWORD_ENV)
    if args.user is None and args.password is not None:
        raise CLIError("--password needs --user")
    authenticator = None
    if args.user is not None:
        if not password:
            raise CLIError(f"--user needs --password (or ${PASSWORD_ENV})")
        authenticator = ListenerPasswordAuthenticator(fixed_credentials(args.user, password))
    if args.no_tls and args.identity:
        raise CLIError("--identity and --no-tls contradict each other")
    identity = TLSIdentity.get(args.identity) if args.identity else None
    return URLEndpointListenerConfiguration(
        collections,
        port=args.port,
        network_interface=args.interface,
        disable_tls=args.no_tls,
        tls_identity=identity,
        authenticator=authenticator,
        read_only=args.read_only,
        enable_delta_sync=args.delta_sync,
    )


def cmd_listen(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise CLIError(f"--port must be 0-65535, not {args.port}")
    with open_database(args) as db:
        names = args.collection or ["_default._default"]
        collections = [get_collection(db, name, create=True) for name in names]
        config = _config(args, collections)
        return asyncio.run(_serve(config, as_json=args.json))


async def _serve(config: URLEndpointListenerConfiguration, *, as_json: bool) -> int:
    listener = URLEndpointListener(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows
            loop.add_signal_handler(sig, stop.set)
    await listener.start()
    try:
        identity = listener.tls_identity
        if as_json:
            print_json(
                {
                    "event": "listening",
                    "port": listener.port,
                    "urls": listener.urls,
                    "tls": identity is not None,
                    "fingerprint": identity.fingerprint if identity else None,
                }
            )
        else:
            _print_banner(listener)
        output = _print_json_event if as_json else _print_text_event
        if identity is not None and listener.expiry_warning:
            output(
                IdentityExpiring.of(identity.label, identity.expiration, listener.expiry_warning)
            )
        listener.add_event_listener(output)
        sys.stdout.flush()
        await stop.wait()
    finally:
        await listener.stop()
    if as_json:
        print_json({"event": "stopped"})
    else:
        print("Stopped.")
    return 0


def _print_banner(listener: URLEndpointListener) -> None:
    identity = listener.tls_identity
    print(f"Listening on port {listener.port} ({'TLS' if identity else 'no TLS'}):")
    for url in listener.urls:
        print(f"  {url}")
    if identity is not None:
        print(f"TLS identity {identity.label!r}, SHA-256 fingerprint:")
        print(f"  {identity.fingerprint}")
    print("Press Ctrl-C to stop.")


def _print_json_event(event: ListenerEvent) -> None:
    print_json(event.to_dict())
    sys.stdout.flush()


def _print_text_event(event: ListenerEvent) -> None:
    print(f"{time.strftime('%H:%M:%S')} {describe(event)}", flush=True)


def describe(event: ListenerEvent) -> str:
    """One line for a human."""
    if isinstance(event, ConnectionOpened):
        who = f" as {event.user!r}" if event.user else ""
        if event.certificate is not None:
            who = f" with certificate {event.certificate.subject}"
        return f"#{event.connection_id} connected from {event.peer_address}{who}"
    if isinstance(event, ReplicationDirection):
        verb = "pushing" if event.direction == "push" else "pulling"
        return f"#{event.connection_id} {event.peer_address} is {verb}"
    if isinstance(event, ConnectionClosed):
        who = "peer" if event.by_peer else "listener"
        return (
            f"#{event.connection_id} {event.peer_address} disconnected (closed by {who}, "
            f"code {event.code}; received {event.docs_received}, sent {event.docs_sent} docs)"
        )
    if isinstance(event, ConnectionRefused):
        return f"refused {event.peer_address} {event.path!r}: {event.status} {event.reason}"
    if isinstance(event, IdentityExpiring):
        return f"warning: {event.message}"
    return repr(event)
