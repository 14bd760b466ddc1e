"""The measurements, each a coroutine that drives one server (or a cluster) and
returns numbers; :mod:`bench.cli` decides the order and repetitions.

Relayed messages are CANDIDATE frames shaped like the ones the PeerJS client sends
(an ICE candidate inside a ``data`` connection payload, about 300 bytes).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench import stats
from bench import wsproto as w
from bench.config import Sizes
from bench.peers import Heartbeat, Peer, RelayHook, Tally, Target, close_all, open_peers
from bench.procstat import CpuMeter, cpu_share, rss_bytes, sample

logger = logging.getLogger(__name__)

CANDIDATE_LINE = ("candidate:842163049 1 udp 1677729535 192.0.2.10 54321 typ srflx "
                  "raddr 0.0.0.0 rport 0 generation 0 ufrag abcd network-cost 999")


def candidate_message(dst: str, seq: int, sent_at: float | None = None) -> bytes:
    """A PeerJS-style CANDIDATE for ``dst`` (with a send time when ``sent_at`` is given)."""
    payload: dict[str, object] = {
        "candidate": {"candidate": CANDIDATE_LINE, "sdpMLineIndex": 0, "sdpMid": "0",
                      "usernameFragment": "abcd"},
        "type": "data", "connectionId": f"dc_{seq:08d}",
    }
    if sent_at is not None:
        payload["t"] = sent_at
    return json.dumps({"type": "CANDIDATE", "payload": payload, "dst": dst},
                      separators=(",", ":")).encode()


def peer_ids(prefix: str, count: int, start: int = 0) -> list[str]:
    """``count`` ids like ``prefix-00001`` (valid PeerJS ids)."""
    return [f"{prefix}-{i:05d}" for i in range(start, start + count)]


class Meters:
    """CPU meters for the servers under load and for this generator process."""

    def __init__(self, server_pids: Sequence[int]):
        self.servers = [CpuMeter(pid) for pid in server_pids]
        self.generator = CpuMeter(os.getpid())

    def begin(self) -> None:
        """Open a window on every meter."""
        for meter in (*self.servers, self.generator):
            meter.begin()

    def end(self) -> None:
        """Close the window on every meter."""
        for meter in (*self.servers, self.generator):
            meter.end()

    @property
    def server_cpu(self) -> float:
        """CPU seconds of all servers together."""
        return sum(m.cpu for m in self.servers)


async def wait_idle(name: str, pid: int, below: float = 0.05, window: float = 0.5,
                    limit: float = 60.0) -> float:
    """Wait until ``pid`` uses under ``below`` of a core over ``window`` seconds (at most
    ``limit`` seconds); return how long that took."""
    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        before = sample(pid)
        await asyncio.sleep(window)
        if cpu_share(before, sample(pid)) < below:
            break
    waited = time.perf_counter() - start
    if waited > 2 * window:
        logger.info("%s took %.1f s to go idle", name, waited)
    return waited


# --- connections per second ---------------------------------------------------------


@dataclass(slots=True)
class ConnectSample:
    """One repetition of opening many connections."""

    rate: float
    opened: int
    failures: int
    server_cpu: float
    generator_cpu: float
    node_cpu: tuple[float, ...] = ()  # each server's share of ``server_cpu`` (a cluster)


async def measure_connects(target: Target, pid: int, prefix: str, sizes: Sizes
                           ) -> ConnectSample:
    """Open ``connect_peers`` connections to OPEN, then close them again."""
    meters = Meters([pid])
    tally = Tally()
    meters.begin()
    result = await open_peers(target, peer_ids(prefix, sizes.connect_peers), tally,
                              sizes.connect_concurrency)
    meters.end()
    if result.failures:
        logger.warning("%s: %d connections failed: %s", target.name,
                       sum(result.failures.values()), dict(result.failures))
    close_all(result.peers)
    await wait_idle(target.name, pid)  # the disconnects' cost stays out of the next rep
    return ConnectSample(result.rate, len(result.peers), sum(result.failures.values()),
                         meters.server_cpu, meters.generator.cpu)


# --- burst --------------------------------------------------------------------------


@dataclass(slots=True)
class BurstSample:
    """One burst: relays per second, how many never arrived, and the CPU it cost."""

    rate: float
    sent: int
    lost: int
    server_cpu: float
    generator_cpu: float


Pairs = list[tuple[Peer, str]]


def neighbour_pairs(peers: Sequence[Peer]) -> Pairs:
    """Each peer sends to the next one (the last to the first)."""
    return [(peer, peers[(i + 1) % len(peers)].peer_id) for i, peer in enumerate(peers)]


def burst_blobs(pairs: Pairs, messages: int, round_no: int) -> list[tuple[Peer, bytes]]:
    """Every sender's frames for one burst, joined so each sender makes one write."""
    blobs = []
    for n, (peer, dst) in enumerate(pairs):
        seq0 = (round_no * len(pairs) + n) * messages
        frames = [w.client_frame(candidate_message(dst, seq0 + k)) for k in range(messages)]
        blobs.append((peer, b"".join(frames)))
    return blobs


async def measure_burst(pairs: Pairs, tally: Tally, server_pids: Sequence[int],
                        messages: int, round_no: int, timeout: float) -> BurstSample:
    """Every sender writes ``messages`` CANDIDATEs back to back; time until all arrive."""
    blobs = burst_blobs(pairs, messages, round_no)
    total = len(pairs) * messages
    base = tally.received
    tally.expect(total)
    meters = Meters(server_pids)
    meters.begin()
    start = time.perf_counter()
    for peer, blob in blobs:
        peer.send(blob)
    try:
        await asyncio.wait_for(tally.done.wait(), timeout)
    except TimeoutError:
        logger.warning("burst: %d of %d arrived within %.0f s", tally.received - base,
                       total, timeout)
    meters.end()
    got = tally.received - base
    elapsed = tally.last_at - start
    rate = got / elapsed if got and elapsed > 0 else math.nan
    return BurstSample(rate, total, total - got, meters.server_cpu, meters.generator.cpu)


# --- latency ------------------------------------------------------------------------


@dataclass(slots=True)
class LatencySample:
    """Relay latency at a fixed rate."""

    p50_ms: float
    p99_ms: float
    sent: int
    received: int


def latency_hook(latencies: list[float]) -> RelayHook:
    """A relay hook that records ``now - payload.t`` for every arriving message."""

    def hook(_peer: Peer, payload: bytes, now: float) -> None:
        sent_at = json.loads(payload)["payload"].get("t")
        if sent_at is not None:
            latencies.append(now - sent_at)

    return hook


async def send_paced(pairs: Pairs, rate: int, seconds: float) -> int:
    """Send CANDIDATEs round-robin from ``pairs`` at ``rate`` per second; return the count."""
    total = int(rate * seconds)
    start = time.perf_counter()
    sent = 0
    while sent < total:
        due = min(total, int((time.perf_counter() - start) * rate) + 1)
        while sent < due:
            peer, dst = pairs[sent % len(pairs)]
            peer.send(w.client_frame(candidate_message(dst, sent, time.perf_counter())))
            sent += 1
        await asyncio.sleep(0.001)
    return sent


async def measure_latency(pairs: Pairs, tally: Tally, rate: int, seconds: float
                          ) -> LatencySample:
    """Relay at ``rate`` messages per second for ``seconds``; p50 and p99 latency."""
    latencies: list[float] = []
    hook = latency_hook(latencies)
    for peer, _ in pairs:
        peer.hook = hook
    try:
        sent = await send_paced(pairs, rate, seconds)
        deadline = time.perf_counter() + 5.0
        while len(latencies) < sent and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
    finally:
        for peer, _ in pairs:
            peer.hook = None
    ms = [x * 1000 for x in latencies]
    return LatencySample(stats.percentile(ms, 50), stats.percentile(ms, 99), sent, len(ms))


# --- heartbeating peers: CPU, memory, capacity --------------------------------------


@dataclass(slots=True)
class CapacityResult:
    """What holding many heartbeating peers cost, and how many one node held."""

    max_ok: int = 0
    failure: str = ""
    cpu_shares: list[float] = field(default_factory=list)
    rss_per_peer: float = math.nan
    cpu_peers: int = 0

    @property
    def cpu_share(self) -> float:
        """Median fraction of a core while ``cpu_peers`` peers heartbeat."""
        return stats.median(self.cpu_shares)


class Crowd:
    """A growing set of heartbeating peers on one server."""

    def __init__(self, target: Target, prefix: str, sizes: Sizes):
        self.target = target
        self.prefix = prefix
        self.sizes = sizes
        self.tally = Tally()
        self.peers: list[Peer] = []
        self.heartbeat = Heartbeat(self.peers, sizes.heartbeat_interval)
        self.at_cpu_step: StepHook | None = None

    async def grow_to(self, count: int) -> str:
        """Open peers until there are ``count``; return a problem description or ''."""
        ids = peer_ids(self.prefix, count - len(self.peers), start=len(self.peers))
        result = await open_peers(self.target, ids, self.tally,
                                  self.sizes.capacity_concurrency,
                                  self.sizes.capacity_connect_timeout)
        self.peers.extend(result.peers)
        if result.failures:
            return f"{sum(result.failures.values())} connections failed ({dict(result.failures)})"
        return ""

    def problems(self) -> str:
        """Closed sockets or unexpected frames so far, as text ('' if none)."""
        closed = sum(1 for p in self.peers if p.closed)
        parts = [f"{closed} peers were closed"] if closed else []
        if self.tally.other:
            parts.append(f"unexpected frames {dict(self.tally.other)}")
        return "; ".join(parts)

    async def probe(self, pairs: int = 50, timeout: float = 10.0) -> str:
        """Relay one message along ``pairs`` spread-out pairs; '' if all arrive."""
        step = max(1, len(self.peers) // (pairs + 1))
        chosen = self.peers[::step][:pairs + 1]
        links = list(zip(chosen, chosen[1:], strict=False))
        base = self.tally.received
        self.tally.expect(len(links))
        for n, (src, dst) in enumerate(links):
            src.send(w.client_frame(candidate_message(dst.peer_id, n)))
        try:
            await asyncio.wait_for(self.tally.done.wait(), timeout)
        except TimeoutError:
            got = self.tally.received - base
            return f"probe: {got} of {len(links)} relays arrived within {timeout:.0f} s"
        return ""

    def close(self) -> None:
        """Drop every peer."""
        close_all(self.peers)


async def warm_up(target: Target, prefix: str) -> None:
    """Open and close a few peers so lazy start-up work is not counted per peer."""
    result = await open_peers(target, peer_ids(prefix, 20), Tally(), 20)
    close_all(result.peers)
    await asyncio.sleep(1.0)


async def measure_cpu(pid: int, window: float, windows: int) -> list[float]:
    """The server's share of a core over ``windows`` consecutive windows."""
    shares = []
    for _ in range(windows):
        before = sample(pid)
        await asyncio.sleep(window)
        shares.append(cpu_share(before, sample(pid)))
    return shares


StepHook = Callable[[], Awaitable[None]]


async def measure_capacity(target: Target, pid: int, prefix: str, sizes: Sizes,
                           at_cpu_step: StepHook | None = None) -> CapacityResult:
    """Step up heartbeating peers; at ``cpu_peers`` read CPU and RSS growth per peer
    (then run ``at_cpu_step``, e.g. a profiler, while those peers are still held)."""
    await warm_up(target, prefix + "w")
    base_rss = rss_bytes(pid)
    crowd = Crowd(target, prefix, sizes)
    crowd.at_cpu_step = at_cpu_step
    crowd.heartbeat.start()
    result = CapacityResult(cpu_peers=sizes.cpu_peers)
    try:
        for step in sizes.capacity_steps:
            problem = await hold_step(crowd, step, pid, base_rss, result)
            if problem:
                result.failure = f"{step:,} peers: {problem}"
                logger.warning("%s: %s", target.name, result.failure)
                break
            result.max_ok = step
            logger.info("%s holds %d heartbeating peers", target.name, step)
    finally:
        await crowd.heartbeat.stop()
        crowd.close()
    return result


async def hold_step(crowd: Crowd, step: int, pid: int, base_rss: int,
                    result: CapacityResult) -> str:
    """Grow to ``step`` peers, hold them, measure if it is the CPU step; '' if healthy."""
    problem = await crowd.grow_to(step)
    if problem:
        return problem
    await asyncio.sleep(crowd.sizes.capacity_hold)
    if step == crowd.sizes.cpu_peers:
        sizes = crowd.sizes
        result.cpu_shares = await measure_cpu(pid, sizes.cpu_window, sizes.cpu_windows)
        result.rss_per_peer = (rss_bytes(pid) - base_rss) / step
        if crowd.at_cpu_step is not None:
            await crowd.at_cpu_step()
    return crowd.problems() or await crowd.probe()


# --- cluster ------------------------------------------------------------------------


@dataclass(slots=True)
class ClusterResult:
    """Cross-node relay through a two-node cluster, or why it could not be measured."""

    available: bool
    reason: str = ""
    samples: list[BurstSample] = field(default_factory=list)
    admission: Any = None  # bench.cluster.AdmissionResult, when measured

    @property
    def rate(self) -> float:
        """Median cross-node relays per second."""
        return stats.median([s.rate for s in self.samples])

    @property
    def lost(self) -> int:
        """Messages that never arrived, over all bursts."""
        return sum(s.lost for s in self.samples)


def cross_pairs(side_a: Sequence[Peer], side_b: Sequence[Peer]) -> Pairs:
    """Every peer sends to its partner on the other node."""
    pairs: Pairs = [(a, b.peer_id) for a, b in zip(side_a, side_b, strict=False)]
    pairs += [(b, a.peer_id) for a, b in zip(side_a, side_b, strict=False)]
    return pairs


async def cross_node_delivers(pairs: Pairs, tally: Tally, timeout: float = 3.0) -> bool:
    """Send one message from node A to node B and tell whether it arrives."""
    base = tally.received
    tally.expect(1)
    peer, dst = pairs[0]
    peer.send(w.client_frame(candidate_message(dst, 0)))
    try:
        await asyncio.wait_for(tally.done.wait(), timeout)
    except TimeoutError:
        return False
    return tally.received > base


async def measure_cluster(node_a: Target, node_b: Target, pids: Sequence[int], prefix: str,
                          sizes: Sizes) -> ClusterResult:
    """Half the burst peers on each node, every message crossing to the other node."""
    tally = Tally()
    half = sizes.burst_peers // 2
    side_a = await open_peers(node_a, peer_ids(prefix + "a", half), tally, 50)
    side_b = await open_peers(node_b, peer_ids(prefix + "b", half), tally, 50)
    everyone = side_a.peers + side_b.peers
    try:
        if side_a.failures or side_b.failures:
            return ClusterResult(False, f"connections failed: {side_a.failures + side_b.failures}")
        pairs = cross_pairs(side_a.peers, side_b.peers)
        if not await cross_node_delivers(pairs, tally):
            return ClusterResult(False, "cluster mode not available")
        result = ClusterResult(True)
        # One warm-up burst first, not counted, as the single node's bursts have: the
        # ratio compares warm bursts with warm bursts.
        for rep in range(sizes.cluster_reps + 1):
            for n, pid in enumerate(pids):
                await wait_idle(f"node {n}", pid)
            sample = await measure_burst(pairs, tally, pids, sizes.burst_messages, rep,
                                         sizes.timeout)
            if rep > 0:
                result.samples.append(sample)
        return result
    finally:
        close_all(everyone)
