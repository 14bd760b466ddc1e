"""The two-node cluster: two peerhub processes sharing Redis and one database.

Until peerhub's cluster mode exists the nodes do not deliver to each other; the phase
then reports ``n/a (cluster mode not available)`` instead of failing.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from bench import scenarios, servers
from bench.config import Sizes

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ClusterSetup:
    """Where the cluster's shared services are."""

    redis_url: str
    database_url: str = ""  # empty: a SQLite file in the run's work directory


def redis_answers(url: str, timeout: float = 2.0) -> bool:
    """Tell whether a Redis server at ``url`` answers PING."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379),
                                      timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            reply = s.recv(64)
    except OSError as exc:
        logger.warning("Redis at %s: %s", url, exc)
        return False
    # +PONG, or -NOAUTH when a password is needed (the nodes get it from the URL).
    return reply.startswith((b"+PONG", b"-NOAUTH"))


def node_env(setup: ClusterSetup, workdir: Path) -> dict[str, str]:
    """What both nodes share: Redis, the database and the secret key."""
    database_url = setup.database_url or f"sqlite:///{workdir / 'cluster.sqlite3'}"
    return {"REDIS_URL": setup.redis_url, "DATABASE_URL": database_url,
            "SECRET_KEY": secrets.token_urlsafe(40)}


def prepare_database(setup: ClusterSetup, workdir: Path, shared: dict[str, str],
                     template: Path | None) -> None:
    """Create the shared database: a copy of an already migrated SQLite file if there
    is one and no DATABASE_URL was given, else by running the migrations."""
    if not setup.database_url and template is not None and template.exists():
        shutil.copy(template, workdir / "cluster.sqlite3")
        return
    servers.prepare_peerhub(servers.peerhub_env(workdir, 0, shared))


async def run_cluster(setup: ClusterSetup, workdir: Path, prefix: str, sizes: Sizes,
                      template: Path | None = None) -> scenarios.ClusterResult:
    """Start two nodes, put half the peers on each and relay across."""
    if not redis_answers(setup.redis_url):
        return scenarios.ClusterResult(False, f"Redis not reachable at {setup.redis_url}")
    workdir.mkdir(parents=True, exist_ok=True)
    shared = node_env(setup, workdir)
    try:
        prepare_database(setup, workdir, shared, template)
        started = [servers.start_peerhub(workdir, name=f"peerhub-node{n}", migrate=False,
                                         **shared) for n in "ab"]
        with servers.running_all(started) as nodes:
            return await scenarios.measure_cluster(
                nodes[0].target(), nodes[1].target(), [n.pid for n in nodes], prefix, sizes)
    except servers.ServerFailed as exc:
        logger.warning("cluster nodes did not start: %s", exc)
        return scenarios.ClusterResult(False, "cluster nodes did not start")
