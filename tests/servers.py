"""Starting real peerhub (daphne) processes for tests, each on a free port."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    """A running peerhub process."""

    host: str
    port: int
    path: str
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def scheme(self) -> str:
        """``https`` when the server was given a TLS certificate, else ``http``."""
        return "https" if self.env.get("TLS_CERT_FILE") else "http"

    @property
    def base_url(self) -> str:
        """``http://host:port{path}`` (``https`` with TLS)."""
        return f"{self.scheme}://{self.host}:{self.port}{self.path}"

    def ws_url(self, peer_id: str, token: str = "tok", key: str = "peerjs") -> str:
        """The PeerJS websocket URL for ``peer_id``."""
        from urllib.parse import urlencode

        query = urlencode({"key": key, "id": peer_id, "token": token})
        return f"ws://{self.host}:{self.port}{self.path}peerjs?{query}"

    def log(self) -> str:
        """What the process printed so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the process and wait for it; then end whatever it left in its group.

        With ``WORKERS`` the process is a supervisor: if it has to be killed (a slow
        drain on a loaded machine), its workers would live on, orphaned, holding the
        port and Redis entries. :func:`run_server` starts each server in a process
        group of its own, so they go too.
        """
        group = self._own_group()
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if group is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)

    def _own_group(self) -> int | None:
        """The process group this server leads, if it was started in one of its own."""
        try:
            group = os.getpgid(self.process.pid)
        except ProcessLookupError:
            return None
        return group if group == self.process.pid else None


def prepare_database(var_dir: Path, env: dict[str, str]) -> None:
    """Migrate the database named by ``env`` and make sure the default key exists."""
    var_dir.mkdir(parents=True, exist_ok=True)
    for cmd in (["migrate", "--noinput", "-v", "0"], ["ensuredefaultkey"]):
        subprocess.run([sys.executable, "manage.py", *cmd], cwd=ROOT, env=env, check=True,
                       stdout=subprocess.DEVNULL)


def server_env(var_dir: Path, port: int, **overrides: str) -> dict[str, str]:
    """The environment a test server runs with."""
    env = dict(os.environ)
    env.update({"HOST": "127.0.0.1", "PORT": str(port), "PEERHUB_VAR_DIR": str(var_dir),
                "DJANGO_SETTINGS_MODULE": "peerhub.settings", "KEY_CACHE_SECONDS": "0"})
    env.update(overrides)
    return env


def wait_for_http(url: str, process: subprocess.Popen[bytes], what: str,
                  timeout: float = 60.0) -> None:
    """Poll ``GET url`` until it answers 200; fail at once if ``process`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited early with {process.returncode}")
        try:
            # a test's self-signed certificate: this only asks whether it is serving
            unverified = ssl._create_unverified_context()  # noqa: S323
            with urllib.request.urlopen(url, timeout=1, context=unverified) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not start")


class PortTaken(RuntimeError):
    """The server could not listen: its port was taken after :func:`free_port` chose it."""


def wait_until_serving(server: LiveServer, timeout: float = 60.0) -> None:
    """Poll ``GET {path}`` until the server answers, or fail with its log.

    The answer must come from this process: it has said it is serving, and it is still
    running (another process that took the port first would answer too).
    """
    try:
        wait_for_http(server.base_url, server.process, "peerhub", timeout)
        if "peerhub: serving on" not in server.log() or server.process.poll() is not None:
            server.process.wait(10)
            raise RuntimeError("peerhub exited early")
        # With WORKERS, the first worker's answer says nothing of the others: until each
        # listens, the kernel hands every connection to the ones that do.
        workers = int(server.env.get("WORKERS", "1") or "1")
        deadline = time.monotonic() + timeout
        while server.log().count("peerhub: serving on") < workers:
            if server.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"not all {workers} workers started")
            time.sleep(0.1)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        log = server.log()
        if "peerhub: cannot listen on" in log:
            raise PortTaken(log) from exc
        raise RuntimeError(f"{exc}:\n{log}") from exc


@contextmanager
def run_server(var_dir: Path, template_db: Path | None = None,
               **overrides: str) -> Iterator[LiveServer]:
    """Run one peerhub process with ``overrides`` in its environment.

    Without a ``PORT`` it listens on a free port; if another process takes that port
    between the choice and the bind (it happens on a busy machine), a new one is chosen.
    """
    fixed = int(overrides.pop("PORT", "0"))
    port = fixed or free_port()
    env = server_env(var_dir, port, **overrides)
    if "DATABASE_URL" not in overrides:
        db = var_dir / "peerhub.sqlite3"
        if template_db is not None and not db.exists():
            var_dir.mkdir(parents=True, exist_ok=True)
            shutil.copy(template_db, db)
        else:
            prepare_database(var_dir, env)
    var_dir.mkdir(parents=True, exist_ok=True)
    for attempt in range(1 if fixed else 3):
        server = _spawn(var_dir, env)
        try:
            wait_until_serving(server)
            break
        except PortTaken:
            server.stop()
            if fixed or attempt == 2:
                raise
            env["PORT"] = str(free_port())
        except BaseException:
            server.stop()
            raise
    try:
        yield server
    finally:
        server.stop()


def _spawn(var_dir: Path, env: dict[str, str]) -> LiveServer:
    port = int(env["PORT"])
    log_path = var_dir / f"server-{port}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "peerhub.serve"], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = LiveServer("127.0.0.1", port, env.get("PEERHUB_PATH", "/") or "/", proc,
                        log_path, env)
    if not server.path.endswith("/"):
        server.path += "/"
    return server


def manage(server: LiveServer, *args: str) -> str:
    """Run ``manage.py`` against ``server``'s database and return its output."""
    out = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=server.env,
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()
