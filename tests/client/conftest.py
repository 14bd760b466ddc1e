"""Fixtures for the client tests: the reference peerjs-server (npm ``peer``) on loopback."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import missing
from tests.servers import ROOT, free_port, wait_for_http

PEER_BIN = ROOT / "node_modules/peer/dist/bin/peerjs.js"


@dataclass
class ReferenceServer:
    """A running ``peerjs`` server process from node_modules (restartable on its port)."""

    node: str
    log_dir: Path
    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    path: str = "/"
    key: str = "peerjs"
    extra: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}{self.path}"

    def start(self) -> None:
        args = [self.node, str(PEER_BIN), "--port", str(self.port), "--host", self.host,
                "--path", self.path, "--key", self.key, *self.extra]  # fmt: skip
        log = open(self.log_dir / f"peerjs-{self.port}.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self._wait_serving()

    def _wait_serving(self) -> None:
        assert self.process is not None
        wait_for_http(self.base_url, self.process, "peerjs-server", timeout=15)

    def stop(self) -> None:
        # peerjs-server lingers ~10 s on SIGTERM while sockets are open; a kill is also
        # the harsher restart the client has to survive
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None


def _reference(node: str, log_dir: Path, **kwargs: object) -> Iterator[ReferenceServer]:
    if not PEER_BIN.exists():
        missing("node_modules/peer is missing (npm install)")
    server = ReferenceServer(node, log_dir, **kwargs)  # type: ignore[arg-type]
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def reference_server(
    node: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ReferenceServer]:
    """peerjs-server 1.0.2 with default options, shared by the session."""
    yield from _reference(node, tmp_path_factory.mktemp("peerjs"))


@pytest.fixture
def private_reference_server(node: str, tmp_path: Path) -> Iterator[ReferenceServer]:
    """A peerjs-server of this test only (it may stop and restart it)."""
    yield from _reference(
        node, tmp_path, path="/myapp/", key="sekrit", extra=["--expire_timeout", "1500"]
    )
