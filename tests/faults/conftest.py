"""Fixtures of the fault-injection scenarios; `--soak` (or PEERBASE_SOAK=1) makes them big."""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from engine.listener import URLEndpointListener, URLEndpointListenerConfiguration
from engine.store import Database
from tests.replication.conftest import make_db  # noqa: F401  (re-exported fixture)
from tests.tls.conftest import memory_keyring  # noqa: F401  (re-exported fixture)

from .proxy import FaultProxy
from .support import Child, Sizes, sizes, soak_from_env


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak",
        action="store_true",
        default=False,
        help="run the fault-injection scenarios of tests/faults larger and longer",
    )


@pytest.fixture
def scale(request: pytest.FixtureRequest) -> Sizes:
    return sizes(bool(request.config.getoption("soak", default=False)) or soak_from_env())


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    """Seeded from PEERBASE_FAULTS_SEED (default: fixed) and the test's name."""
    seed = int(os.environ.get("PEERBASE_FAULTS_SEED", "20261121"))
    request.node.user_properties.append(("seed", seed))
    return random.Random(f"{seed}-{request.node.name}")


@pytest.fixture
async def make_listener() -> AsyncIterator[Callable[..., Any]]:
    """``await make_listener(db, **config)``: a plain ws:// listener on 127.0.0.1."""
    started: list[URLEndpointListener] = []

    async def make(db: Database, **options: Any) -> URLEndpointListener:
        options.setdefault("disable_tls", True)
        listener = URLEndpointListener(
            URLEndpointListenerConfiguration(
                [db.default_collection()], network_interface="127.0.0.1", **options
            )
        )
        await listener.start()
        started.append(listener)
        return listener

    yield make
    for listener in started:
        await listener.stop()


@pytest.fixture
async def make_proxy() -> AsyncIterator[Callable[[int], Any]]:
    proxies: list[FaultProxy] = []

    async def make(upstream_port: int) -> FaultProxy:
        proxy = FaultProxy(upstream_port)
        await proxy.start()
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        await proxy.stop()


@pytest.fixture
async def spawn(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """``await spawn(argv, name)``: a Child (stderr in tmp_path/name.log), killed at teardown."""
    children: list[Child] = []

    async def start(argv: list[str], name: str) -> Child:
        child = await Child.start(argv, tmp_path / f"{name}.log")
        children.append(child)
        return child

    yield start
    for child in children:
        if child.proc.returncode is None:
            child.proc.kill()
            await child.proc.wait()
