"""Fixtures: an in-memory keyring, a private gnome-keyring Secret Service, TLS helpers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import keyring
import keyring.core
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import SecretService
from keyring.errors import PasswordDeleteError

from engine.tls import KeyringSecretStore, set_default_store

SYSTEM_DEPS_HINT = "run .ci/system-deps (as root) to install gnome-keyring and dbus"
SECRETS_BUS_NAME = "org.freedesktop.secrets"
DAEMON_TIMEOUT = 10.0


class MemoryKeyring(KeyringBackend):
    """A keyring backend in a dict; records the largest secret as UTF-16 bytes."""

    priority = -1  # never picked by keyring's own detection

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}
        self.max_utf16_bytes = 0

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.max_utf16_bytes = max(self.max_utf16_bytes, len(password.encode("utf-16-le")))
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.entries.pop((service, username), None) is None:
            raise PasswordDeleteError(username)


@contextlib.contextmanager
def using_keyring(backend: KeyringBackend) -> Iterator[None]:
    """Select ``backend`` for the duration, then restore whatever was selected before."""
    # Read the private slot rather than get_keyring(): that would run keyring's detection,
    # which probes the developer's real session bus.
    previous = keyring.core._keyring_backend
    keyring.set_keyring(backend)
    set_default_store(None)
    try:
        yield
    finally:
        keyring.core._keyring_backend = previous
        set_default_store(None)


@dataclass
class SecretServiceSession:
    address: str
    root: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)


def _wait_for_name(address: str, name: str, daemon: subprocess.Popen[bytes]) -> None:
    from jeepney.bus_messages import message_bus
    from jeepney.io.blocking import open_dbus_connection

    deadline = time.monotonic() + DAEMON_TIMEOUT
    with open_dbus_connection(bus=address) as connection:
        while time.monotonic() < deadline:
            if daemon.poll() is not None:
                break
            reply = connection.send_and_get_reply(message_bus.NameHasOwner(name))
            if reply.body[0]:
                return
            time.sleep(0.02)
    raise RuntimeError(f"{name} did not appear on the private bus")


def _ensure_default_collection(address: str) -> None:
    """Point the ``default`` alias at the unlocked login collection if it is unset."""
    from jeepney import DBusAddress, new_method_call
    from jeepney.io.blocking import open_dbus_connection

    service = DBusAddress(
        "/org/freedesktop/secrets",
        bus_name=SECRETS_BUS_NAME,
        interface="org.freedesktop.Secret.Service",
    )
    with open_dbus_connection(bus=address) as connection:
        (current,) = connection.send_and_get_reply(
            new_method_call(service, "ReadAlias", "s", ("default",))
        ).body
        if current == "/":
            login = "/org/freedesktop/secrets/collection/login"
            connection.send_and_get_reply(
                new_method_call(service, "SetAlias", "so", ("default", login))
            )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


# A session bus with no <servicedir>: nothing on the host (e.g. gnome-keyring's own
# activation file) can be started behind the tests' back with the real HOME.
_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


def throwaway_env(root: Path) -> dict[str, str]:
    """An environment whose HOME and XDG directories are fresh folders under ``root``."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    for var, sub in (
        ("HOME", "home"),
        ("XDG_DATA_HOME", "data"),
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_CACHE_HOME", "cache"),
        ("XDG_RUNTIME_DIR", "run"),
    ):
        (root / sub).mkdir(mode=0o700, exist_ok=True)
        env[var] = str(root / sub)
    return env


def start_bus(root: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """A private D-Bus session bus listening in ``root``: the process and its address."""
    if not shutil.which("dbus-daemon"):
        pytest.fail(f"dbus-daemon not found: {SYSTEM_DEPS_HINT}", pytrace=False)
    config = root / "bus.conf"
    config.write_text(_BUS_CONFIG.format(socket=root / "bus"))
    bus = subprocess.Popen(
        ["dbus-daemon", f"--config-file={config}", "--nofork", "--nopidfile", "--print-address=1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    assert bus.stdout is not None
    address = bus.stdout.readline().decode().strip()
    if not address:
        _stop(bus)
        pytest.fail(f"dbus-daemon did not start: {SYSTEM_DEPS_HINT}", pytrace=False)
    return bus, address


@pytest.fixture(scope="session")
def secret_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecretServiceSession]:
    """gnome-keyring's Secret Service on a private D-Bus session bus, in a throwaway HOME.

    The daemons get their own HOME/XDG directories and bus, so a user's real keyring is
    never reached; DBUS_SESSION_BUS_ADDRESS is set in this process only while in use.
    """
    missing = [cmd for cmd in ("dbus-daemon", "gnome-keyring-daemon") if not shutil.which(cmd)]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not found: {SYSTEM_DEPS_HINT}", pytrace=False)
    root = tmp_path_factory.mktemp("secret-service")
    env = throwaway_env(root)
    session = SecretServiceSession(address="", root=root)
    try:
        bus, session.address = start_bus(root, env)
        session.processes.append(bus)
        env["DBUS_SESSION_BUS_ADDRESS"] = session.address
        # --foreground rather than --daemonize, so the daemon stays our child and is
        # stopped by its pid; --unlock reads the login keyring's password from stdin.
        with (root / "gnome-keyring.log").open("wb") as log:
            daemon = subprocess.Popen(
                ["gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets"],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=log,
                env=env,
            )
        session.processes.append(daemon)
        assert daemon.stdin is not None
        daemon.stdin.write(b"throwaway-test-password")
        daemon.stdin.close()
        try:
            _wait_for_name(session.address, SECRETS_BUS_NAME, daemon)
            _ensure_default_collection(session.address)
        except RuntimeError as exc:
            log_text = (root / "gnome-keyring.log").read_text(errors="replace")
            pytest.fail(f"gnome-keyring did not start ({exc}): {log_text}", pytrace=False)
        yield session
    finally:
        for process in reversed(session.processes):
            _stop(process)


@contextlib.contextmanager
def session_bus(address: str) -> Iterator[None]:
    previous = os.environ.get("DBUS_SESSION_BUS_ADDRESS")
    os.environ["DBUS_SESSION_BUS_ADDRESS"] = address
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("DBUS_SESSION_BUS_ADDRESS", None)
        else:
            os.environ["DBUS_SESSION_BUS_ADDRESS"] = previous


@pytest.fixture(params=["memory-keyring", "secret-service"])
def keyring_backend(request: pytest.FixtureRequest) -> Iterator[KeyringBackend]:
    """The selected keyring backend: in memory, then gnome-keyring over D-Bus."""
    if request.param == "memory-keyring":
        backend: KeyringBackend = MemoryKeyring()
        with using_keyring(backend):
            yield backend
        return
    session: SecretServiceSession = request.getfixturevalue("secret_service")
    backend = SecretService.Keyring()
    with session_bus(session.address), using_keyring(backend):
        unlocked = _default_collection_unlocked()
        assert unlocked, "the private gnome-keyring's default collection is locked"
        yield backend


def _default_collection_unlocked() -> bool:
    import secretstorage

    connection = secretstorage.dbus_init()
    try:
        return not secretstorage.get_default_collection(connection).is_locked()
    finally:
        connection.close()


@pytest.fixture
def keyring_store(keyring_backend: KeyringBackend) -> Iterator[KeyringSecretStore]:
    """A keyring store under a fresh service name, emptied afterwards."""
    service = f"peerbase-test-{uuid.uuid4().hex[:12]}"
    yield KeyringSecretStore(service)
    _purge(keyring_backend, service)


def _purge(backend: KeyringBackend, service: str) -> None:
    if isinstance(backend, MemoryKeyring):
        for key in [k for k in backend.entries if k[0] == service]:
            del backend.entries[key]
        return
    import secretstorage

    connection = secretstorage.dbus_init()
    try:
        collection = secretstorage.get_default_collection(connection)
        for item in collection.search_items({"service": service}):
            item.delete()
    finally:
        connection.close()


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    backend = MemoryKeyring()
    with using_keyring(backend):
        yield backend


@pytest.fixture
def memory_store(memory_keyring: MemoryKeyring) -> KeyringSecretStore:
    return KeyringSecretStore("peerbase-test")


@dataclass
class Exchange:
    """What one connection did: the reply the client got, the client cert the server saw."""

    reply: bytes
    server_saw_client_cert: dict[str, object] | None
    version: str | None
    server_cert_der: bytes | None


async def exchange(
    server_context: ssl.SSLContext,
    client_context: ssl.SSLContext,
    *,
    server_hostname: str | None = None,
    seen: list[dict[str, object] | None] | None = None,
) -> Exchange:
    """Serve on 127.0.0.1, connect with TLS, send b"ping", expect b"PING" back.

    ``seen`` collects the client certificate of each connection the server handled.
    """
    seen = [] if seen is None else seen

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(writer.get_extra_info("peercert"))
        try:
            writer.write((await reader.readexactly(4)).upper())
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                "127.0.0.1", port, ssl=client_context, server_hostname=server_hostname
            ),
            timeout=5,
        )
        try:
            writer.write(b"ping")
            reply = await asyncio.wait_for(reader.readexactly(4), timeout=5)
            ssl_object = writer.get_extra_info("ssl_object")
            version = ssl_object.version()
            server_cert_der = ssl_object.getpeercert(binary_form=True)
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
    finally:
        server.close()
        await server.wait_closed()
    return Exchange(reply, seen[-1] if seen else None, version, server_cert_der)
