"""Several peerhub processes on one port: ``WORKERS=N python -m peerhub.serve``.

The parent starts N workers (each an ordinary ``python -m peerhub.serve``) that listen on
the same port with ``SO_REUSEPORT``, so the kernel spreads new connections over them.
They act as one PeerServer the way any cluster does: through Redis (``REDIS_URL`` is
required) and a shared database. Each worker is named ``NODE_NAME/i`` in session rows.

The parent forwards SIGTERM and SIGINT to the workers and waits for them. A worker that
dies after it started is restarted; one that fails within its first seconds (a busy
port, a bad setting) stops them all, since restarting would fail the same way.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from types import FrameType

from peerhub.env import node_name

logger = logging.getLogger(__name__)

#: A worker that exits sooner than this after it started is a start-up failure.
STARTUP_SECONDS = 5.0


class WorkersRefused(RuntimeError):
    """The settings do not allow several workers; the text says why."""


def check_workers_allowed() -> None:
    """Raise :class:`WorkersRefused` unless workers can act as one server."""
    if not os.environ.get("REDIS_URL"):
        raise WorkersRefused("WORKERS > 1 needs REDIS_URL: the workers share peers through "
                             "Redis (see README, Running a cluster)")


def worker_env(base: dict[str, str], name: str, index: int) -> dict[str, str]:
    """The environment of worker ``index`` (from 1)."""
    return {**base, "WORKERS": "1", "REUSE_PORT": "true", "NODE_NAME": f"{name}/{index}"}


def supervise(count: int) -> int:
    """Run ``count`` workers until a signal stops them; return the exit status."""
    check_workers_allowed()
    name = node_name()
    base = dict(os.environ)

    def spawn(index: int) -> tuple[subprocess.Popen[bytes], float]:
        proc = subprocess.Popen([sys.executable, "-m", "peerhub.serve"],
                                env=worker_env(base, name, index))
        return proc, time.monotonic()

    workers = {i: spawn(i) for i in range(1, count + 1)}
    stopping: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)
        for proc, _ in workers.values():
            if proc.poll() is None:
                proc.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    print(f"peerhub: {count} workers started as {name}/1..{count}", flush=True)
    status = 0
    while not stopping:
        time.sleep(0.2)
        for index, (proc, started) in list(workers.items()):
            code = proc.poll()
            if code is None or stopping:
                continue
            if time.monotonic() - started < STARTUP_SECONDS:
                print(f"peerhub: worker {index} failed to start (exit {code}); stopping",
                      file=sys.stderr, flush=True)
                status = 1
                forward(signal.SIGTERM, None)
                break
            print(f"peerhub: worker {index} exited with {code}; restarting it",
                  file=sys.stderr, flush=True)
            workers[index] = spawn(index)
    for proc, _ in workers.values():
        proc.wait()
    return status
