"""Shared fixtures: real peerhub processes and a real Chromium."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from tests.servers import LiveServer, prepare_database, run_server, server_env

IN_CI = os.environ.get("CI", "").lower() == "true"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]


def missing(what: str) -> None:
    """Skip with a clear reason, except in CI where a missing part is a failure."""
    if IN_CI:
        pytest.fail(f"{what} (CI=true: nothing may be skipped)")
    pytest.skip(what)


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database with the default key, copied for each server."""
    var_dir = tmp_path_factory.mktemp("template")
    prepare_database(var_dir, server_env(var_dir, 0))
    return var_dir / "peerhub.sqlite3"


@pytest.fixture(scope="session")
def peerhub_server(tmp_path_factory: pytest.TempPathFactory,
                   template_db: Path) -> Iterator[LiveServer]:
    """One real daphne running peerhub with default settings, for the whole session."""
    with run_server(tmp_path_factory.mktemp("server"), template_db) as server:
        yield server


@pytest.fixture
def start_server(tmp_path: Path, template_db: Path
                 ) -> Callable[..., AbstractContextManager[LiveServer]]:
    """Start a private peerhub with environment overrides: ``with start_server(X="1")``."""
    counter = iter(range(1000))

    def start(**overrides: str) -> AbstractContextManager[LiveServer]:
        return run_server(tmp_path / f"srv{next(counter)}", template_db, **overrides)

    return start


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """A headless Debian Chromium driven by Playwright."""
    if not Path(CHROMIUM).exists():
        missing(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    if not Path("node_modules/peerjs/dist/peerjs.min.js").exists():
        missing("node_modules/peerjs is missing (npm install)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture(scope="session")
def node() -> str:
    """The node executable (for the reference peerjs-server)."""
    path = shutil.which("node")
    if path is None:
        missing("node is not installed")
    assert path is not None
    return path


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Callable[..., list[LiveServer]]]:
    """Start N peerhub nodes sharing a fresh PostgreSQL database and a Redis prefix.

    ``cluster(2, ALIVE_TIMEOUT="3000")`` returns the running nodes; all stop at the end.
    ``redis_url=`` points the nodes at another Redis (e.g. a private one).
    """
    from contextlib import ExitStack

    from tests.services import (
        REDIS_URL,
        fresh_postgres_database,
        postgres_reachable,
        redis_reachable,
    )

    if not redis_reachable():
        missing(f"Redis not reachable at {REDIS_URL} (set TEST_REDIS_URL)")
    if not postgres_reachable():
        missing("PostgreSQL not reachable (set TEST_POSTGRES_URL)")
    with ExitStack() as stack:
        db_url = stack.enter_context(fresh_postgres_database())
        prefix = f"t{os.getpid()}-{tmp_path.name}"
        base_env = {"DATABASE_URL": db_url, "REDIS_PREFIX": prefix}
        prepare_database(tmp_path, server_env(tmp_path, 0, **base_env))
        counter = iter(range(100))

        def start(n: int, redis_url: str = REDIS_URL, **overrides: str) -> list[LiveServer]:
            env = {**base_env, "REDIS_URL": redis_url, **overrides}
            nodes = []
            for _ in range(n):
                i = next(counter)
                nodes.append(stack.enter_context(run_server(
                    tmp_path / f"node{i}", None, NODE_NAME=f"node{i}", **env)))
            return nodes

        yield start


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[Any]:
    """A redis-server of the test's own on a free port, which the test may kill and
    restart (never the shared one); killed at the end."""
    from tests.servers import free_port
    from tests.services import PrivateRedis, redis_server_available

    if not redis_server_available():
        missing("redis-server is not installed")
    redis = PrivateRedis(tmp_path, free_port())
    redis.start()
    try:
        yield redis
    finally:
        redis.kill()
