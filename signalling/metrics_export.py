"""The Prometheus view of this process: a collector that reads the counters at scrape time.

Nothing is counted for Prometheus as it happens: :class:`PeerhubCollector` adds up what
the hub, the session recorder, the per-address guard and :mod:`signalling.metrics`
already hold when ``/metrics`` is asked for, so the relay path carries no
``Counter.inc()``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from signalling.metrics import Metrics

if TYPE_CHECKING:
    from signalling.sessions import SessionInfo


@dataclass(frozen=True, slots=True)
class NodeSnapshot:
    """The per-node figures read for one scrape (gathered by the caller)."""

    node: str
    live_peers: dict[str, int]
    offline_queue: int
    writer_backlog: int
    sockets: dict[str, int]
    loop_lag: float
    redis_rtt: float | None  # None: not in cluster mode
    redis_up: bool
    version: str


def message_totals(metrics: Metrics, live: list[SessionInfo]) -> Counter[tuple[str, str]]:
    """Client messages per (key, type): ended sessions plus the live ones now."""
    totals = Counter(metrics.ended_messages)
    for info in live:
        for kind, n in info.by_type.items():
            totals[(info.api_key, kind)] += n
        if info.heartbeats:
            totals[(info.api_key, "HEARTBEAT")] += info.heartbeats
    return totals


def sent_totals(metrics: Metrics, live: list[SessionInfo]) -> Counter[str]:
    """Server frames sent per key: ended sessions plus the live ones now."""
    totals = Counter(metrics.ended_sent)
    for info in live:
        totals[info.api_key] += info.messages_out
    return totals


class PeerhubCollector(Collector):
    """Yields peerhub's metric families from a snapshot taken by ``snapshot()``."""

    def __init__(self, metrics: Metrics, snapshot: Callable[[], NodeSnapshot],
                 live: Callable[[], list[SessionInfo]]) -> None:
        self._metrics = metrics
        self._snapshot = snapshot
        self._live = live

    def collect(self) -> Iterator[Metric]:
        """Every family, per key and per node."""
        snap = self._snapshot()
        live = self._live()
        m = self._metrics
        yield _info(snap)
        yield _by_key(GaugeMetricFamily, "peerhub_live_peers",
                      "Peers registered on this node now, per API key.", snap.live_peers)
        yield _by_key(CounterMetricFamily, "peerhub_connects",
                      "Peers that registered on this node since it started, per API key.",
                      m.connects)
        refusals = CounterMetricFamily(
            "peerhub_refusals", "Clients refused, per API key and reason (limits, origin, "
            "invalid key); key is empty when no valid key was known.",
            labels=["key", "reason"])
        for (key, reason), n in sorted(m.refusals.items()):
            refusals.add_metric([key, reason], n)
        yield refusals
        messages = CounterMetricFamily(
            "peerhub_messages_received", "Client messages received, per API key and type "
            "(HEARTBEAT apart from the relayed OFFER, ANSWER, CANDIDATE, LEAVE, EXPIRE).",
            labels=["key", "type"])
        for (key, kind), n in sorted(message_totals(m, live).items()):
            messages.add_metric([key, kind], n)
        yield messages
        yield _by_key(CounterMetricFamily, "peerhub_messages_sent",
                      "Server frames sent to peers, per API key.", sent_totals(m, live))
        yield from _node_families(snap)


def _info(snap: NodeSnapshot) -> Metric:
    info = GaugeMetricFamily("peerhub_build_info", "The running version (value 1).",
                             labels=["version", "node"])
    info.add_metric([snap.version, snap.node], 1)
    return info


def _by_key(family: type[GaugeMetricFamily] | type[CounterMetricFamily], name: str,
            doc: str, values: dict[str, int]) -> Metric:
    metric = family(name, doc, labels=["key"])
    for key, n in sorted(values.items()):
        metric.add_metric([key], n)
    return metric


def _gauge(name: str, doc: str, node: str, value: float) -> Metric:
    metric = GaugeMetricFamily(name, doc, labels=["node"])
    metric.add_metric([node], value)
    return metric


def _node_families(snap: NodeSnapshot) -> Iterator[Metric]:
    node = snap.node
    yield _gauge("peerhub_offline_queue_messages",
                 "Messages waiting for peers that are not connected (queued by this node).",
                 node, snap.offline_queue)
    yield _gauge("peerhub_session_writer_backlog",
                 "Session events not yet written to the database.", node, snap.writer_backlog)
    yield _gauge("peerhub_event_loop_lag_seconds",
                 "Largest event-loop delay seen since the previous scrape.", node,
                 snap.loop_lag)
    if snap.redis_rtt is not None:
        yield _gauge("peerhub_redis_up", "1 when Redis answered a PING at scrape, else 0.",
                     node, 1 if snap.redis_up else 0)
        if snap.redis_up:
            yield _gauge("peerhub_redis_rtt_seconds",
                         "One Redis PING's round trip, at scrape.", node, snap.redis_rtt)
    sockets = GaugeMetricFamily("peerhub_open_sockets",
                                "Client connections open now, per transport.",
                                labels=["node", "transport"])
    for transport, n in sorted(snap.sockets.items()):
        sockets.add_metric([node, transport], n)
    yield sockets
