"""`peerbase sync` as a subprocess against an in-process listener."""

from __future__ import annotations

import asyncio
import io
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from engine.cli.sync_commands import ProgressBar
from engine.listener import (
    ListenerPasswordAuthenticator,
    URLEndpointListener,
    URLEndpointListenerConfiguration,
    fixed_credentials,
)
from engine.replication import ActivityLevel, Progress, ReplicatorStatus
from engine.store import Database, MutableDocument


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Database, URLEndpointListener]]:
    db = Database("shared", tmp_path / "server")
    for i in range(5):
        db.default_collection().save(MutableDocument(f"s{i}", {"n": i}))
    listener = URLEndpointListener(
        URLEndpointListenerConfiguration(
            [db.default_collection()],
            disable_tls=True,
            authenticator=ListenerPasswordAuthenticator(fixed_credentials("u", "pw")),
        )
    )
    await listener.start()
    yield db, listener
    await listener.stop()
    db.close()


async def peerbase(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "engine.cli.main",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_sync_json_push_and_pull(served: Any, tmp_path: Path) -> None:
    db, listener = served
    client = tmp_path / "client"
    code, _, _ = await peerbase("doc", "put", "c1", '{"from": "cli"}', "--db", str(client))
    assert code == 0
    url = f"ws://127.0.0.1:{listener.port}/shared"
    code, out, err = await peerbase(
        "sync", url, "--db", str(client), "--user", "u", "--password", "pw", "--json"
    )
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    statuses = [e for e in events if e["event"] == "status"]
    assert statuses[0]["activity"] == "connecting"
    assert statuses[-1]["activity"] == "stopped" and statuses[-1]["error"] is None
    assert statuses[-1]["completed"] == statuses[-1]["total"] == 6
    docs = [e for e in events if e["event"] == "document"]
    assert sorted((d["direction"], d["id"]) for d in docs) == [
        ("pull", f"s{i}") for i in range(5)
    ] + [("push", "c1")]
    assert events[-1] == {
        "event": "done",
        "pushed": 1,
        "pulled": 5,
        "conflicts_resolved": 0,
        "deltas_sent": 0,
        "deltas_received": 0,
    }
    assert db.default_collection().get_document("c1")["from"] == "cli"  # type: ignore[index]


async def test_sync_wrong_password_fails_clearly(served: Any, tmp_path: Path) -> None:
    _, listener = served
    url = f"ws://127.0.0.1:{listener.port}/shared"
    code, out, err = await peerbase(
        "sync", url, "--db", str(tmp_path / "c"), "--pull", "--user", "u", "--password", "nope"
    )
    assert code == 1 and "authentication failed" in err and "401" in err
    assert out == ""


async def test_sync_doc_ids_and_direction(served: Any, tmp_path: Path) -> None:
    _, listener = served
    client = tmp_path / "client"
    url = f"ws://127.0.0.1:{listener.port}/shared"
    code, out, err = await peerbase(
        "sync",
        url,
        "--db",
        str(client),
        "--pull",
        "--doc-id",
        "s2",
        "--doc-id",
        "s4",
        "--user",
        "u",
        "--password",
        "pw",
    )
    assert code == 0, err
    assert "pulled 2 documents" in out
    code, out, _ = await peerbase("doc", "list", "--db", str(client))
    assert out.split() == ["s2", "s4"]


async def test_sync_usage_errors(tmp_path: Path) -> None:
    code, _, err = await peerbase("sync", "http://x/db", "--db", str(tmp_path / "c"))
    assert code == 1 and "ws://" in err
    code, _, err = await peerbase(
        "sync", "ws://127.0.0.1:1/db", "--db", str(tmp_path / "c"), "--self-signed-only"
    )
    assert code == 1 and "wss://" in err
    code, _, err = await peerbase(
        "sync", "ws://127.0.0.1:1/db", "--db", str(tmp_path / "c"), "--push", "--pull"
    )
    assert code == 2 and "not allowed with" in err


def test_progress_bar_renders_progress() -> None:
    out = io.StringIO()
    bar = ProgressBar(out)
    bar.update(ReplicatorStatus(ActivityLevel.BUSY, Progress(5, 20)))
    bar.update(ReplicatorStatus(ActivityLevel.STOPPED, Progress(20, 20)))
    bar.finish()
    text = out.getvalue()
    assert "\r[#######" in text and "5/20 busy" in text
    assert "[" + "#" * 30 + "] 20/20 stopped" in text and text.endswith("\n")
