"""How big each scenario is: the full run and the ``--quick`` smoke run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Sizes:
    """Counts, durations and repetitions for one run."""

    connect_peers: int  # connections opened per repetition
    connect_concurrency: int  # handshakes in flight at once
    connect_reps: int
    burst_peers: int  # peers in the burst; each sends to its neighbour
    burst_messages: int  # messages per peer per burst
    burst_reps: int  # measured bursts (after one warm-up burst)
    latency_rate: int  # messages per second, all peers together
    latency_seconds: float
    latency_reps: int
    cpu_peers: int  # heartbeating peers for the CPU and memory rows
    cpu_window: float  # seconds per CPU reading
    cpu_windows: int  # CPU readings (the median is reported)
    capacity_steps: tuple[int, ...]  # peer counts tried, in order
    capacity_hold: float  # seconds each step is held, heartbeating, before the check
    cluster_reps: int  # measured cross-node bursts (after one warm-up burst)
    slowdrip_reps: int = 3  # each: one write, one drip, one run of pongs
    capacity_concurrency: int = 50  # gentler than the connect test: holding is measured
    capacity_connect_timeout: float = 60.0  # seconds a handshake may take there
    heartbeat_interval: float = 5.0
    http_requests: int = 5000  # GET {key}/id requests per repetition of an HTTP row
    join_peers: int = 2000  # joins (GET id, then websocket to OPEN) per repetition
    http_reps: int = 3
    timeout: float = 30.0  # longest wait for a burst to arrive

    @property
    def burst_total(self) -> int:
        """Messages relayed in one burst."""
        return self.burst_peers * self.burst_messages


FULL = Sizes(
    connect_peers=2000, connect_concurrency=200, connect_reps=3,
    burst_peers=200, burst_messages=50, burst_reps=7,
    latency_rate=2000, latency_seconds=5.0, latency_reps=3,
    cpu_peers=5000, cpu_window=10.0, cpu_windows=3,
    capacity_steps=(2500, 5000, 7500, 10000), capacity_hold=10.0,
    cluster_reps=7,  # as many as burst_reps: the ratio divides one median by the other
)

QUICK = Sizes(
    connect_peers=200, connect_concurrency=100, connect_reps=1,
    burst_peers=200, burst_messages=50, burst_reps=2,
    latency_rate=2000, latency_seconds=1.5, latency_reps=1,
    cpu_peers=500, cpu_window=2.0, cpu_windows=1,
    capacity_steps=(250, 500), capacity_hold=1.0,
    cluster_reps=1, slowdrip_reps=1,
    http_requests=500, join_peers=200, http_reps=1,
)
