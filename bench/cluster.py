"""The two-node cluster: two peerhub processes sharing Redis and one database.

Measured: cross-node relay (the burst), connections per second to OPEN over both nodes,
a 1,000-peer crowd arriving at once and its reload with new tokens on the other node
(beside peerjs-server's single process), and the Redis commands each admitted peer and
each cross-node message cost (``INFO commandstats`` deltas: exact with
``--private-redis``, which runs the phase on a redis-server of its own; on a shared
Redis they include other clients' commands). If the nodes do not
deliver to each other the phase reports ``n/a (cluster mode not available)``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bench import scenarios, servers, stats
from bench.config import Sizes
from bench.peers import (
    Peer,
    ServerRefused,
    Tally,
    Target,
    close_all,
    collector_paused,
    open_peer,
    open_peers,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ClusterSetup:
    """Where the cluster's shared services are."""

    redis_url: str
    database_url: str = ""  # empty: a SQLite file in the run's work directory
    private_redis: bool = False  # start a redis-server of the phase's own


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


@contextmanager
def private_redis(workdir: Path, wanted: bool) -> Iterator[str | None]:
    """A redis-server of the phase's own on a free port (None if not wanted or none is
    installed)."""
    exe = shutil.which("redis-server") if wanted else None
    if exe is None:
        yield None
        return
    port = servers.free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 10
        while not redis_answers(url, 0.5):
            if time.monotonic() > deadline:
                raise servers.ServerFailed("private redis-server did not start")
            time.sleep(0.05)
        yield url
    finally:
        proc.kill()
        proc.wait(5)


async def run_cluster(setup: ClusterSetup, workdir: Path, prefix: str, sizes: Sizes,
                      template: Path | None = None) -> scenarios.ClusterResult:
    """Start two nodes, put half the peers on each and relay across; then admission."""
    workdir.mkdir(parents=True, exist_ok=True)
    with private_redis(workdir, setup.private_redis) as own:
        if own is not None:
            setup = ClusterSetup(own, setup.database_url)
        if not redis_answers(setup.redis_url):
            return scenarios.ClusterResult(False, f"Redis not reachable at {setup.redis_url}")
        return await _run_cluster(setup, workdir, prefix, sizes, template)


async def _run_cluster(setup: ClusterSetup, workdir: Path, prefix: str, sizes: Sizes,
                       template: Path | None) -> scenarios.ClusterResult:
    shared = node_env(setup, workdir)
    try:
        prepare_database(setup, workdir, shared, template)
        started = [servers.start_peerhub(workdir, name=f"peerhub-node{n}", migrate=False,
                                         **shared) for n in "ab"]
        with servers.running_all(started) as nodes:
            targets = [n.target() for n in nodes]
            before = redis_counts(setup.redis_url)
            result = await scenarios.measure_cluster(
                targets[0], targets[1], [n.pid for n in nodes], prefix, sizes)
            after = redis_counts(setup.redis_url)
            if not result.available:
                return result
            admission = AdmissionResult()
            sent = sum(s.sent for s in result.samples)
            if sent:
                admission.commands_per_message = (after[0] - before[0]) / sent
                admission.publishes_per_message = (after[2] - before[2]) / sent
                # Redis's CPU covers the warm-up burst too: divided by all it carried.
                carried = sent * (sizes.cluster_reps + 1) / sizes.cluster_reps
                admission.redis_cpu_per_message = (after[3] - before[3]) / carried
            admission.connects = await measure_connect_rate(
                targets, [n.pid for n in nodes], f"{prefix}c", sizes)
            admission.commands_per_peer, admission.scripts_per_peer = await count_admission(
                setup.redis_url, targets, f"{prefix}r")
            admission.crowd = await measure_crowd(targets, f"{prefix}f")
        with servers.running(servers.start_peerjs(workdir)) as ref:
            admission.reference_crowd = await measure_crowd([ref.target()], f"{prefix}f")
        result.admission = admission
        return result
    except servers.ServerFailed as exc:
        logger.warning("cluster nodes did not start: %s", exc)
        return scenarios.ClusterResult(False, "cluster nodes did not start")


# --- admission at cluster speed -------------------------------------------------------

CROWD = 1000


@dataclass(slots=True)
class CrowdTimes:
    """A crowd arriving at once, then reloading (new tokens), on one set of targets."""

    admit_s: float = float("nan")  # time until every peer of the crowd had OPEN
    reload_s: float = float("nan")  # the same for the reload
    refused: int = 0  # peers that never reached OPEN (either round)
    retries: int = 0  # reload connections that met ID-TAKEN and retried


@dataclass(slots=True)
class AdmissionResult:
    """The cluster's admission figures and the Redis work they cost."""

    # to OPEN, both nodes, 200 in flight: one sample per repetition
    connects: list[scenarios.ConnectSample] = field(default_factory=list)
    crowd: CrowdTimes | None = None
    reference_crowd: CrowdTimes | None = None  # peerjs-server, one process
    commands_per_peer: float = float("nan")  # Redis commands (scripts' inner ones too)
    scripts_per_peer: float = float("nan")  # EVALSHA calls: one round trip each
    commands_per_message: float = float("nan")
    publishes_per_message: float = float("nan")  # PUBLISH calls (inside scripts too)
    redis_cpu_per_message: float = float("nan")  # seconds of redis-server CPU

    @property
    def connect_rate(self) -> float:
        """Median connections to OPEN per second over the repetitions."""
        return stats.median([s.rate for s in self.connects])

    @property
    def connect_failures(self) -> int:
        """Connections that failed, over all repetitions."""
        return sum(s.failures for s in self.connects)


async def crowd_round(targets: list[Target], ids: list[str], token: str,
                      shift: int, tally: Tally, retry_taken: bool
                      ) -> tuple[list[Peer], int, int, float]:
    """Every id at once, id i to target (i + shift) % n; (peers, refused, retries, s)."""
    retries = 0

    async def one(i: int, peer_id: str) -> Peer | None:
        nonlocal retries
        for attempt in range(50):
            try:
                return await open_peer(targets[(i + shift) % len(targets)], peer_id,
                                       tally, 60.0, f"{token}-{peer_id}")
            except ServerRefused as exc:
                # The old socket's close may not be processed yet (a reload): the id is
                # still held with the old token. A browser would see the same.
                if not (retry_taken and "ID-TAKEN" in str(exc)) or attempt == 49:
                    return None
                retries += 1
                await asyncio.sleep(0.05)
            except (OSError, TimeoutError):
                return None
        return None

    with collector_paused():
        started = time.perf_counter()
        opened = await asyncio.gather(*(one(i, pid) for i, pid in enumerate(ids)))
        elapsed = time.perf_counter() - started
    peers = [p for p in opened if p is not None]
    return peers, len(ids) - len(peers), retries, elapsed


async def measure_crowd(targets: list[Target], prefix: str) -> CrowdTimes:
    """:data:`CROWD` peers at once split over ``targets``; then all drop and come back at
    once with new tokens, each on the next target (a reload)."""
    tally = Tally()
    ids = scenarios.peer_ids(prefix, CROWD)
    peers, refused, _, admit = await crowd_round(targets, ids, "first", 0, tally, False)
    close_all(peers)
    again, refused2, retries, reload = await crowd_round(targets, ids, "second", 1, tally,
                                                        True)
    close_all(again)
    await asyncio.sleep(1.0)  # let the servers process the closes before what follows
    return CrowdTimes(admit, reload, refused + refused2, retries)


async def measure_connect_rate(targets: list[Target], pids: list[int], prefix: str,
                               sizes: Sizes) -> list[scenarios.ConnectSample]:
    """``connect_reps`` repetitions, as the single node's row: each waits for every node
    to go idle, then opens ``connect_peers`` fresh ids to OPEN split over the targets
    (``connect_concurrency`` in flight in all) with the nodes' CPU metered over the
    opening, then closes them."""
    samples = []
    for rep in range(sizes.connect_reps):
        for n, pid in enumerate(pids):
            await scenarios.wait_idle(f"node {n}", pid)
        samples.append(await connect_round(targets, pids, f"{prefix}{rep}-", sizes))
    for n, pid in enumerate(pids):
        await scenarios.wait_idle(f"node {n}", pid)  # the last closes stay out of what follows
    return samples


async def connect_round(targets: list[Target], pids: list[int], prefix: str,
                        sizes: Sizes) -> scenarios.ConnectSample:
    """One repetition of :func:`measure_connect_rate`."""
    tally = Tally()
    share = sizes.connect_peers // len(targets)
    flight = max(1, sizes.connect_concurrency // len(targets))
    meters = scenarios.Meters(pids)
    meters.begin()
    with collector_paused():  # held over both targets' batches, not just each one's
        started = time.perf_counter()
        results = await asyncio.gather(*(
            open_peers(t, scenarios.peer_ids(f"{prefix}{n}", share), tally, flight)
            for n, t in enumerate(targets)))
        elapsed = time.perf_counter() - started
    meters.end()
    opened = sum(len(r.peers) for r in results)
    failures = sum(sum(r.failures.values()) for r in results)
    if failures:
        logger.warning("cluster: %d connections failed: %s", failures,
                       [dict(r.failures) for r in results])
    for r in results:
        close_all(r.peers)
    return scenarios.ConnectSample(opened / elapsed if elapsed > 0 else float("nan"), opened,
                                   failures, meters.server_cpu, meters.generator.cpu,
                                   tuple(m.cpu for m in meters.servers))


def redis_counts(url: str) -> tuple[int, int, int, float]:
    """Redis's running totals: every command, EVALSHA calls, PUBLISH calls, CPU seconds
    (the whole server's: exact only on a private redis-server)."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        stats = client.info("commandstats")
        cpu = client.info("cpu")
    finally:
        client.close()
    total = sum(int(v["calls"]) for v in stats.values())
    return (total, int(stats.get("cmdstat_evalsha", {}).get("calls", 0)),
            int(stats.get("cmdstat_publish", {}).get("calls", 0)),
            float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]))


async def count_admission(url: str, targets: list[Target], prefix: str,
                          peers: int = 500) -> tuple[float, float]:
    """Redis commands and script calls per admitted peer (join and leave, the nodes'
    background work included)."""
    before = redis_counts(url)
    tally = Tally()
    result = await asyncio.gather(*(open_peers(t, scenarios.peer_ids(f"{prefix}{n}",
                                                                     peers // 2), tally, 100)
                                    for n, t in enumerate(targets)))
    opened = sum(len(r.peers) for r in result)
    for r in result:
        close_all(r.peers)
    await asyncio.sleep(1.0)
    after = redis_counts(url)
    return ((after[0] - before[0]) / max(1, opened), (after[1] - before[1]) / max(1, opened))
