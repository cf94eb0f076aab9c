"""A listener for the TLS benchmark: ``python -m bench.tls_peer --db DIR --mode MODE``.

MODE is ``ws`` (no TLS), ``wss`` (self-signed identity, like the anonymous one) or
``wss-basic`` (the same plus HTTP Basic authentication as bench/bench). The identity is
kept in an encrypted file next to the database, so no OS keyring is needed. Prints
``{"port": N}`` and serves through `URLEndpointListener` until stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import orjson

USER, PASSWORD = "bench", "bench-password"


async def serve(directory: Path, mode: str) -> None:
    from engine.listener import (
        ListenerPasswordAuthenticator,
        URLEndpointListener,
        URLEndpointListenerConfiguration,
        fixed_credentials,
    )
    from engine.store import Database
    from engine.tls import EncryptedFileSecretStore, TLSIdentity

    db = Database("bench", directory)
    identity = None
    if mode != "ws":
        store = EncryptedFileSecretStore(directory / "secrets.json", "bench passphrase")
        identity = TLSIdentity.create("bench", {"common_name": "bench-peer"}, store=store)
    auth = None
    if mode == "wss-basic":
        auth = ListenerPasswordAuthenticator(fixed_credentials(USER, PASSWORD))
    listener = URLEndpointListener(URLEndpointListenerConfiguration(
        [db.default_collection()], network_interface="127.0.0.1", disable_tls=mode == "ws",
        tls_identity=identity, authenticator=auth))
    await listener.start()
    sys.stdout.write(orjson.dumps({"port": listener.port}).decode() + "\n")
    sys.stdout.flush()
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the benchmark closes stdin
    await listener.stop()
    db.close()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tls_peer", description=__doc__)
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--mode", choices=["ws", "wss", "wss-basic"], required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.db, args.mode))
    return 0


if __name__ == "__main__":
    sys.exit(main())
