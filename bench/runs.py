"""The run: what it measured, and its four phases.

(1) Both servers up side by side, repetitions alternating between them so that noise
from other work on the machine falls on both: connections per second, the burst,
latency at a fixed rate. (2) On a fresh process of each in turn, heartbeating peers
stepped up for CPU, memory and capacity. (3) A two-node peerhub cluster on Redis for
cross-node relay. (4) A 256 KiB message trickled in 10-byte writes (bench/slowdrip.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import clientbench, http_rows, scenarios, servers, slowdrip
from bench.cluster import ClusterSetup, run_cluster
from bench.config import Sizes
from bench.peers import Tally, close_all, open_peers
from bench.profile import ProfilerUnavailable, Recording, read_stacks, summarise

logger = logging.getLogger(__name__)

PEERHUB = "peerhub"
PEERJS = "peerjs-server"
PHASES = ("single", "capacity", "cluster", "slowdrip", "client")


@dataclass
class Results:
    """Everything measured on one server."""

    connects: list[scenarios.ConnectSample] = field(default_factory=list)
    bursts: list[scenarios.BurstSample] = field(default_factory=list)
    latencies: list[scenarios.LatencySample] = field(default_factory=list)
    capacity: scenarios.CapacityResult | None = None
    slowdrip: slowdrip.SlowDripResult | None = None


@dataclass
class Run:
    """One benchmark run: its sizes, where it keeps files, and what it measured."""

    sizes: Sizes
    workdir: Path
    prefix: str
    results: dict[str, Results] = field(
        default_factory=lambda: {PEERHUB: Results(), PEERJS: Results()})
    cluster: scenarios.ClusterResult | None = None
    client: clientbench.ClientResult | None = None
    profile_dir: Path | None = None
    profile_summary: str = ""
    errors: list[str] = field(default_factory=list)
    http: dict[str, dict[str, list[http_rows.HttpSample]]] = field(default_factory=dict)


# --- phase 1: both servers side by side ---------------------------------------------


@contextmanager
def both_servers(run: Run) -> Iterator[dict[str, servers.Server]]:
    """A fresh peerhub (database migrated) and peerjs-server, both ready."""
    ref = servers.start_peerjs(run.workdir)  # starts while peerhub's database migrates
    try:
        hub = servers.start_peerhub(run.workdir / "peerhub")
    except BaseException:
        ref.stop()
        raise
    with servers.running_all([ref, hub]):
        yield {PEERHUB: hub, PEERJS: ref}


async def settle(procs: dict[str, servers.Server]) -> None:
    """Wait until every server is idle, so one measurement's tail misses the next."""
    for name, srv in procs.items():
        await scenarios.wait_idle(name, srv.pid)


def alternating(names: list[str], rep: int) -> list[str]:
    """``names`` in turn order for repetition ``rep`` (reversed every other time)."""
    return names if rep % 2 == 0 else names[::-1]


async def phase_single(run: Run) -> None:
    """Connections per second, the burst and latency, alternating between servers."""
    sizes = run.sizes
    with both_servers(run) as procs:
        names = list(procs)
        for rep in range(sizes.connect_reps):
            for name in alternating(names, rep):
                srv = procs[name]
                sample = await scenarios.measure_connects(
                    srv.target(), srv.pid, f"{run.prefix}c{rep}", sizes)
                run.results[name].connects.append(sample)
                logger.info("%s connects rep %d: %.0f/s", name, rep, sample.rate)
        if run.profile_dir is not None:
            await profile_connects(run, procs[PEERHUB])
        run.http = await http_rows.run_rows(
            {n: (s.target(), s.pid) for n, s in procs.items()}, sizes.http_reps,
            sizes.http_requests, sizes.join_peers, lambda: settle(procs))
        await relay_rounds(run, procs)


async def relay_rounds(run: Run, procs: dict[str, servers.Server]) -> None:
    """Open the burst peers on each server, then alternate bursts and latency runs."""
    sizes = run.sizes
    tallies = {name: Tally() for name in procs}
    pairs: dict[str, scenarios.Pairs] = {}
    opened = []
    for name, srv in procs.items():
        ids = scenarios.peer_ids(f"{run.prefix}b", sizes.burst_peers)
        res = await open_peers(srv.target(), ids, tallies[name], 50)
        if res.failures:
            raise RuntimeError(f"{name}: burst peers failed to connect: {dict(res.failures)}")
        opened += res.peers
        pairs[name] = scenarios.neighbour_pairs(res.peers)
    try:
        await bursts(run, procs, pairs, tallies)
        await latencies(run, procs, pairs, tallies)
        if run.profile_dir is not None:
            await profile_bursts(run, procs[PEERHUB], pairs[PEERHUB], tallies[PEERHUB])
            await profiled(run, procs[PEERHUB], "latency", scenarios.measure_latency(
                pairs[PEERHUB], tallies[PEERHUB], sizes.latency_rate, sizes.latency_seconds))
    finally:
        close_all(opened)


async def bursts(run: Run, procs: dict[str, servers.Server], pairs: dict[str, scenarios.Pairs],
                 tallies: dict[str, Tally]) -> None:
    """One warm-up burst each, then ``burst_reps`` measured bursts each, alternating."""
    sizes = run.sizes
    names = list(procs)
    for rep in range(sizes.burst_reps + 1):
        for name in alternating(names, rep):
            sample = await scenarios.measure_burst(
                pairs[name], tallies[name], [procs[name].pid], sizes.burst_messages, rep,
                sizes.timeout)
            logger.info("%s burst rep %d: %.0f/s, lost %d", name, rep, sample.rate,
                        sample.lost)
            if rep > 0:
                run.results[name].bursts.append(sample)
            await settle(procs)


async def latencies(run: Run, procs: dict[str, servers.Server],
                    pairs: dict[str, scenarios.Pairs], tallies: dict[str, Tally]) -> None:
    """``latency_reps`` paced runs per server, alternating."""
    sizes = run.sizes
    for rep in range(sizes.latency_reps):
        for name in alternating(list(procs), rep):
            await settle(procs)
            sample = await scenarios.measure_latency(pairs[name], tallies[name],
                                                     sizes.latency_rate, sizes.latency_seconds)
            logger.info("%s latency rep %d: p50 %.2f ms p99 %.2f ms (%d/%d)", name, rep,
                        sample.p50_ms, sample.p99_ms, sample.received, sample.sent)
            run.results[name].latencies.append(sample)


async def profile_bursts(run: Run, srv: servers.Server, pairs: scenarios.Pairs,
                         tally: Tally, bursts_count: int = 10) -> None:
    """Record peerhub with py-spy over extra bursts (not part of the measured numbers)."""

    async def load() -> None:
        for n in range(bursts_count):
            await scenarios.measure_burst(pairs, tally, [srv.pid], run.sizes.burst_messages,
                                          1000 + n, run.sizes.timeout)

    await profiled(run, srv, "burst", load())


async def profile_connects(run: Run, srv: servers.Server) -> None:
    """Record peerhub with py-spy while extra connections open (not measured)."""
    await profiled(run, srv, "connect", scenarios.measure_connects(
        srv.target(), srv.pid, f"{run.prefix}pc", run.sizes))


async def profiled(run: Run, srv: servers.Server, label: str,
                   load: Coroutine[Any, Any, object]) -> None:
    """Run ``load`` while py-spy records ``srv``; keep a summary of the samples."""
    assert run.profile_dir is not None
    run.profile_dir.mkdir(parents=True, exist_ok=True)
    out = run.profile_dir / f"peerhub-{label}.txt"
    try:
        recording = Recording(srv.pid, out)
    except ProfilerUnavailable as exc:
        load.close()
        run.profile_summary = str(exc)
        return
    await asyncio.sleep(1.0)  # py-spy attaches
    await load
    recording.stop()
    if out.exists():
        summary = summarise(read_stacks(out))
        (run.profile_dir / f"peerhub-{label}-summary.txt").write_text(summary + "\n")
        run.profile_summary += f"\n-- {label} --\n{summary}\n"


# --- phase 2: heartbeating peers ------------------------------------------------------


def start_fresh(run: Run, name: str) -> servers.Server:
    """A new process of server ``name`` (peerhub reuses the migrated database)."""
    if name == PEERJS:
        return servers.start_peerjs(run.workdir)
    var_dir = run.workdir / "peerhub"
    return servers.start_peerhub(var_dir, migrate=not (var_dir / "peerhub.sqlite3").exists())


async def phase_capacity(run: Run) -> None:
    """Step up heartbeating peers on a fresh process of each server in turn."""
    for name in (PEERHUB, PEERJS):
        with servers.running(start_fresh(run, name)) as srv:
            hook = None
            if name == PEERHUB and run.profile_dir is not None:
                hook = profile_hold(run, srv)
            result = await scenarios.measure_capacity(srv.target(), srv.pid,
                                                      f"{run.prefix}h", run.sizes, hook)
        run.results[name].capacity = result


def profile_hold(run: Run, srv: servers.Server, seconds: float = 20.0
                 ) -> Callable[[], Awaitable[None]]:
    """A step hook that records peerhub while the CPU step's peers heartbeat."""

    async def hook() -> None:
        await profiled(run, srv, "hold", asyncio.sleep(seconds))

    return hook


# --- phase 3: cluster ---------------------------------------------------------------


async def phase_cluster(run: Run, setup: ClusterSetup) -> None:
    """Cross-node relay through two peerhub processes sharing Redis and a database."""
    run.cluster = await run_cluster(setup, run.workdir / "cluster", f"{run.prefix}x",
                                    run.sizes, run.workdir / "peerhub" / "peerhub.sqlite3")


# --- phase 4: slow drip -------------------------------------------------------------


async def phase_slowdrip(run: Run) -> None:
    """A 256 KiB message in 10-byte writes against one write (bench/slowdrip.py)."""
    found = await slowdrip.measure(run.workdir, run.prefix, run.sizes.slowdrip_reps)
    for name, result in found.items():
        run.results[name].slowdrip = result


PhaseFn = Callable[[Run, ClusterSetup], Coroutine[Any, Any, None]]


async def phase_client(run: Run) -> None:
    """The Python client next to Chromium (bench/clientbench.py)."""
    run.client = await clientbench.measure(run.workdir)


async def run_phases(run: Run, phases: set[str], setup: ClusterSetup) -> None:
    """Run the chosen phases in order; a phase that breaks is noted and skipped."""
    table: dict[str, PhaseFn] = {
        "single": lambda r, _: phase_single(r),
        "capacity": lambda r, _: phase_capacity(r),
        "cluster": phase_cluster,
        "slowdrip": lambda r, _: phase_slowdrip(r),
        "client": lambda r, _: phase_client(r),
    }
    for name in PHASES:
        if name not in phases:
            continue
        started = time.monotonic()
        logger.info("phase %s: start", name)
        try:
            await table[name](run, setup)
        except (servers.ServerFailed, RuntimeError, OSError) as exc:
            logger.error("phase %s failed: %s", name, exc)
            run.errors.append(f"phase {name} failed: {exc}")
        logger.info("phase %s: done in %.0f s", name, time.monotonic() - started)
