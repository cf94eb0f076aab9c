"""`peerbase listen` (as a subprocess, stopped by SIGTERM) and `peerbase identity ...`."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from keyring.backends import SecretService

from engine.cli import main
from engine.replication import (
    BasicAuthenticator,
    Replicator,
    ReplicatorConfiguration,
    URLEndpoint,
)
from engine.store import Database
from engine.tls import ANONYMOUS_LABEL, TLSIdentity
from tests.listener.conftest import REPLICATION_TIMEOUT, MemoryKeyring, put_docs
from tests.tls.conftest import SecretServiceSession, session_bus, using_keyring
from tests.tls.pki import make_ca, make_leaf, make_pkcs12

ROOT = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def _start_listen(env: dict[str, str], *argv: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sys; from engine.cli import main; sys.exit(main(sys.argv[1:]))",
        "listen",
        *argv,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _line(proc: asyncio.subprocess.Process) -> dict[str, Any]:
    assert proc.stdout is not None
    raw = await asyncio.wait_for(proc.stdout.readline(), REPLICATION_TIMEOUT)
    if not raw:
        assert proc.stderr is not None
        pytest.fail(f"listen exited: {(await proc.stderr.read()).decode()}")
    value: dict[str, Any] = json.loads(raw)
    return value


async def _terminate(proc: asyncio.subprocess.Process) -> tuple[int, list[dict[str, Any]]]:
    proc.send_signal(signal.SIGTERM)
    out, err = await asyncio.wait_for(proc.communicate(), REPLICATION_TIMEOUT)
    assert "Traceback" not in err.decode(), err.decode()
    rest = [json.loads(line) for line in out.decode().splitlines()]
    assert proc.returncode is not None
    return proc.returncode, rest


def _base_env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8"}


async def test_listen_json_tls_with_the_secret_service(
    secret_service: SecretServiceSession, tmp_path: Path
) -> None:
    env = {
        **_base_env(tmp_path),
        "DBUS_SESSION_BUS_ADDRESS": secret_service.address,
        "PYTHON_KEYRING_BACKEND": "keyring.backends.SecretService.Keyring",
    }
    served = tmp_path / "served"
    proc = await _start_listen(env, "--db", str(served), "--json")
    try:
        first = await _line(proc)
        assert set(first) == {"event", "port", "urls", "tls", "fingerprint"}
        assert first["event"] == "listening" and first["tls"] is True
        assert first["port"] > 0
        assert f"wss://127.0.0.1:{first['port']}/served" in first["urls"]
        assert len(first["fingerprint"]) == 64

        client = Database("client", tmp_path / "client")
        put_docs(client.default_collection(), "cli", 2)
        replicator = Replicator(
            ReplicatorConfiguration(
                target=URLEndpoint(f"wss://127.0.0.1:{first['port']}/served"),
                collections=[client.default_collection()],
                accept_only_self_signed_server_certificate=True,
            )
        )
        replicator.start()
        status = await replicator.wait_stopped(REPLICATION_TIMEOUT)
        client.close()
        assert status.error is None, status.error
        assert replicator.server_certificate is not None
        assert hashlib.sha256(replicator.server_certificate).hexdigest() == first["fingerprint"]
        opened = await _line(proc)
        assert opened["event"] == "connection-opened"
        assert opened["peer_address"] == "127.0.0.1"
    finally:
        code, rest = await _terminate(proc)
    assert code == 0
    assert rest[-1] == {"event": "stopped"}
    assert "connection-closed" in [e["event"] for e in rest]
    with Database.open_path(served) as db:
        assert set(db.default_collection().document_ids()) == {"cli-0", "cli-1"}
    with session_bus(secret_service.address), using_keyring(SecretService.Keyring()):
        assert TLSIdentity.get(ANONYMOUS_LABEL).fingerprint == first["fingerprint"]  # persisted
        TLSIdentity.delete(ANONYMOUS_LABEL)


async def test_listen_json_no_tls_with_password(tmp_path: Path) -> None:
    env = {**_base_env(tmp_path), "PEERBASE_LISTEN_PASSWORD": "pw"}
    proc = await _start_listen(
        env, "--db", str(tmp_path / "served"), "--json", "--no-tls", "--user", "u",
        "--interface", "127.0.0.1", "--read-only",
    )  # fmt: skip
    try:
        first = await _line(proc)
        assert first == {
            "event": "listening",
            "port": first["port"],
            "urls": [f"ws://127.0.0.1:{first['port']}/served"],
            "tls": False,
            "fingerprint": None,
        }
        client = Database("client", tmp_path / "client")
        replicator = Replicator(
            ReplicatorConfiguration(
                target=URLEndpoint(first["urls"][0]),
                collections=[client.default_collection()],
                authenticator=BasicAuthenticator("u", "wrong"),
            )
        )
        replicator.start()
        status = await replicator.wait_stopped(REPLICATION_TIMEOUT)
        client.close()
        assert status.error is not None and status.error.code == 401
        refused = await _line(proc)
        assert refused["event"] == "connection-refused" and refused["status"] == 401
    finally:
        code, rest = await _terminate(proc)
    assert code == 0 and rest == [{"event": "stopped"}]


def test_listen_usage_errors(
    memory_keyring: MemoryKeyring, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "db")
    code, _, err = run(capsys, "listen", "--db", db, "--password", "x")
    assert code == 1 and "--password needs --user" in err
    code, _, err = run(capsys, "listen", "--db", db, "--no-tls", "--identity", "x")
    assert code == 1 and "contradict" in err
    code, _, err = run(capsys, "listen", "--db", db, "--identity", "missing")
    assert code == 1 and "no TLS identity is stored under 'missing'" in err
    code, _, err = run(capsys, "listen", "--db", db, "--interface", "no-such-if0")
    assert code == 1 and "no-such-if0" in err


def test_identity_commands(
    memory_keyring: MemoryKeyring, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys, "identity", "create", "mine", "--common-name", "peer.local",
        "--organization", "Peerbase", "--days", "90", "--json",
    )  # fmt: skip
    assert code == 0
    created = json.loads(out)
    assert created["label"] == "mine" and created["subject"]["organization"] == "Peerbase"
    assert created["expired"] is False and created["chain_length"] == 1

    root = make_ca("CLI Root")
    p12 = tmp_path / "peer.p12"
    p12.write_bytes(make_pkcs12(make_leaf("cli-peer", root), [root.cert], b"pw"))
    code, out, _ = run(capsys, "identity", "import", str(p12), "--label", "imp", "--password", "pw")
    assert code == 0 and "cli-peer" in out
    code, _, err = run(capsys, "identity", "import", str(p12), "--label", "bad", "--password", "x")
    assert code == 1 and "password" in err

    code, out, _ = run(capsys, "identity", "list")
    assert out.split() == ["imp", "mine"]
    code, out, _ = run(capsys, "identity", "list", "--json")
    assert [i["label"] for i in json.loads(out)] == ["imp", "mine"]
    code, out, _ = run(capsys, "identity", "show", "imp", "--json")
    shown = json.loads(out)
    assert shown["chain_length"] == 2
    assert shown["fingerprint"] == TLSIdentity.get("imp").fingerprint
    code, out, _ = run(capsys, "identity", "show", "mine")
    assert "fingerprint:" in out and created["fingerprint"] in out

    cert = tmp_path / "mine.pem"
    code, _, _ = run(capsys, "identity", "export-cert", "mine", "--out", str(cert))
    assert code == 0 and cert.read_bytes() == TLSIdentity.get("mine").cert_pem()
    der = tmp_path / "mine.der"
    run(capsys, "identity", "export-cert", "mine", "--der", "--out", str(der))
    assert hashlib.sha256(der.read_bytes()).hexdigest() == created["fingerprint"]
    chain = tmp_path / "imp.pem"
    run(capsys, "identity", "export-cert", "imp", "--chain", "--out", str(chain))
    assert chain.read_bytes().count(b"BEGIN CERTIFICATE") == 2

    code, _, _ = run(capsys, "identity", "delete", "mine")
    assert code == 0
    code, _, err = run(capsys, "identity", "show", "mine")
    assert code == 1 and "no TLS identity is stored under 'mine'" in err
    code, _, err = run(capsys, "identity", "create", "imp", "--common-name", "x")
    assert code == 1 and "already stored" in err
