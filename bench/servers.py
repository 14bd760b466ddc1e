"""Starting and stopping the servers under test: peerhub (daphne) and peerjs-server.

Each server is its own process, bound to 127.0.0.1 on a free port, with its output in a
log file under the run's temporary directory. Limits that would throttle the benchmark
(rate limits, concurrent limits) are raised for both.
"""

from __future__ import annotations

import logging
import os
import resource
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.peers import Target

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
PEERJS_BIN = ROOT / "node_modules" / "peer" / "dist" / "bin" / "peerjs.js"
HOST = "127.0.0.1"

#: Environment that keeps peerhub's own limits out of the measurement.
PEERHUB_UNTHROTTLED = {
    "RATE_LIMIT": "100000",
    "RATE_BURST": "100000",
    "CONCURRENT_LIMIT": "100000",
}
#: peerjs-server's alive timeout: long enough that no benchmark peer is dropped.
PEERJS_ALIVE_TIMEOUT_MS = 600_000


class ServerFailed(RuntimeError):
    """A server process exited or never answered ``GET /``."""


@dataclass
class Server:
    """A running server process."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    grace: float = 2.0  # seconds between SIGTERM and SIGKILL (nothing to save)

    @property
    def pid(self) -> int:
        """The server's process id (the one that does the work)."""
        return self.process.pid

    def target(self) -> Target:
        """Where the load generator connects."""
        return Target(self.name, HOST, self.port)

    def log_tail(self, lines: int = 30) -> str:
        """The last lines the server printed."""
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(self.grace)
        except subprocess.TimeoutExpired:
            logger.info("%s did not stop on SIGTERM; killing it", self.name)
            self.process.kill()
            self.process.wait(5)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def raise_open_files_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1_048_576
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def wait_ready(server: Server, timeout: float = 30.0) -> None:
    """Poll ``GET http://127.0.0.1:PORT/`` until it answers 200."""
    url = f"http://{HOST}:{server.port}/"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise ServerFailed(f"{server.name} exited early:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise ServerFailed(f"{server.name} did not answer {url}:\n{server.log_tail()}")


@contextmanager
def running(server: Server) -> Iterator[Server]:
    """Wait until ``server`` is ready; stop it on exit."""
    with running_all([server]):
        yield server


@contextmanager
def running_all(started: list[Server]) -> Iterator[list[Server]]:
    """Wait until every server (already spawned, starting in parallel) is ready; stop
    them all on exit."""
    try:
        for server in started:
            wait_ready(server)
        yield started
    finally:
        for server in started:
            server.stop()


def spawn(name: str, argv: list[str], env: dict[str, str], log_path: Path,
          port: int, grace: float = 2.0) -> Server:
    """Start ``argv`` with its output going to ``log_path``."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    logger.info("started %s (pid %d) on port %d", name, proc.pid, port)
    return Server(name, port, proc, log_path, grace)


# --- peerhub ------------------------------------------------------------------------


def peerhub_env(var_dir: Path, port: int, extra: dict[str, str]) -> dict[str, str]:
    """The environment of one peerhub process."""
    env = dict(os.environ)
    env.update(PEERHUB_UNTHROTTLED)
    env.update({"HOST": HOST, "PORT": str(port), "PEERHUB_VAR_DIR": str(var_dir),
                "DJANGO_SETTINGS_MODULE": "peerhub.settings",
                "SECRET_KEY": env.get("SECRET_KEY") or secrets.token_urlsafe(40)})
    env.update(extra)
    return env


def prepare_peerhub(env: dict[str, str]) -> None:
    """Migrate the database ``env`` names and create the default key."""
    Path(env["PEERHUB_VAR_DIR"]).mkdir(parents=True, exist_ok=True)
    for args in (["migrate", "--noinput", "-v", "0"], ["ensuredefaultkey"]):
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ServerFailed(f"manage.py {' '.join(args)} failed:\n{done.stderr[-2000:]}")


def start_peerhub(var_dir: Path, name: str = "peerhub", migrate: bool = True,
                  **extra: str) -> Server:
    """Start ``python -m peerhub.serve`` (migrating its database first if asked)."""
    port = free_port()
    env = peerhub_env(var_dir, port, extra)
    if migrate:
        prepare_peerhub(env)
    log_path = var_dir / f"{name}-{port}.log"
    return spawn(name, [sys.executable, "-m", "peerhub.serve"], env, log_path, port)


# --- peerjs-server ------------------------------------------------------------------


def node_binary() -> str:
    """The node executable."""
    return os.environ.get("NODE", "node")


def start_peerjs(log_dir: Path) -> Server:
    """Start the reference peerjs-server 1.0.2 from node_modules."""
    if not PEERJS_BIN.exists():
        raise ServerFailed(f"{PEERJS_BIN} is missing (npm install)")
    port = free_port()
    argv = [node_binary(), str(PEERJS_BIN), "--port", str(port), "--host", HOST,
            "--concurrent_limit", "100000", "--alive_timeout", str(PEERJS_ALIVE_TIMEOUT_MS)]
    # Its SIGTERM handler waits for every client to leave; there is no state to save.
    return spawn("peerjs-server", argv, dict(os.environ), log_dir / f"peerjs-{port}.log",
                 port, grace=1.0)
