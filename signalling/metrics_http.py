"""``GET /metrics``: Prometheus' text format, as a plain ASGI application.

Only the addresses in ``METRICS_ALLOW`` (loopback by default) may scrape; anyone else
gets 403. Each scrape takes one snapshot of this node (one Redis PING in cluster mode,
for the round-trip time) and renders it with ``prometheus_client``.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    gc_collector,
    generate_latest,
    platform_collector,
    process_collector,
)

import peerhub
from peerhub.env import node_name
from signalling.legacy import StreamEndpoint
from signalling.metrics import Metrics, get_metrics
from signalling.metrics_export import NodeSnapshot, PeerhubCollector
from signalling.runtime import get_hub, get_ip_guard
from signalling.sessions import SessionInfo, get_recorder

logger = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
METRICS_PATH = "/metrics"


class BadNetwork(ValueError):
    """A METRICS_ALLOW entry that is not an address or a network."""


def parse_networks(entries: Iterable[str]) -> list[Network]:
    """``["127.0.0.1", "10.0.0.0/8", ...]`` as networks; raises :class:`BadNetwork`."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError as exc:
            raise BadNetwork(f"not an address or network: {entry!r}") from exc
    return networks


def allowed(address: str, networks: list[Network]) -> bool:
    """Tell whether ``address`` lies in one of ``networks`` (False for a non-address)."""
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in networks)


class MetricsEndpoint:
    """The ``/metrics`` ASGI application; it owns its registry and its Redis client."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self._metrics = metrics
        self._registry: CollectorRegistry | None = None
        self._networks: list[Network] | None = None
        self._redis: Any = None
        self._snapshot: NodeSnapshot | None = None

    @property
    def metrics(self) -> Metrics:
        """The counters this endpoint reads."""
        return self._metrics or get_metrics()

    def registry(self) -> CollectorRegistry:
        """peerhub's collector plus the process, GC and platform collectors."""
        if self._registry is None:
            reg = CollectorRegistry(auto_describe=False)
            reg.register(PeerhubCollector(self.metrics, self._current, self._live_sessions))
            process_collector.ProcessCollector(registry=reg)
            gc_collector.GCCollector(registry=reg)
            platform_collector.PlatformCollector(registry=reg)
            self._registry = reg
        return self._registry

    def _current(self) -> NodeSnapshot:
        assert self._snapshot is not None
        return self._snapshot

    @staticmethod
    def _live_sessions() -> list[SessionInfo]:
        return get_recorder().live_sessions()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if self._networks is None:
            self._networks = parse_networks(settings.PEERHUB_METRICS_ALLOW)
        client = str((scope.get("client") or ("",))[0])
        if not allowed(client, self._networks):
            logger.info("refused /metrics to %s (not in METRICS_ALLOW)", client)
            await _respond(send, 403, b"Forbidden\n", b"text/plain; charset=utf-8")
            return
        if scope.get("method") not in ("GET", "HEAD"):
            await _respond(send, 405, b"Method Not Allowed\n", b"text/plain; charset=utf-8",
                           [(b"allow", b"GET, HEAD")])
            return
        self._snapshot = await self.take_snapshot()
        body = generate_latest(self.registry())
        await _respond(send, 200, b"" if scope["method"] == "HEAD" else body,
                       CONTENT_TYPE_LATEST.encode())

    async def take_snapshot(self) -> NodeSnapshot:
        """Read this node's figures once (a Redis PING in cluster mode)."""
        hub = get_hub()
        endpoints = hub.endpoints()
        streams = sum(1 for ep in endpoints if isinstance(ep, StreamEndpoint))
        rtt, up = await self._redis_rtt()
        self.metrics.ensure_started()
        return NodeSnapshot(
            node=node_name(), live_peers=hub.local_keys_online(),
            offline_queue=hub.queue_depth(), writer_backlog=get_recorder().pending,
            sockets={"websocket": get_ip_guard().total_open(), "xhr-stream": streams},
            loop_lag=self.metrics.take_lag(), redis_rtt=rtt, redis_up=up,
            version=peerhub.__version__)

    async def _redis_rtt(self) -> tuple[float | None, bool]:
        if not settings.REDIS_URL:
            return None, False
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError

        if self._redis is None:
            self._redis = aioredis.Redis.from_url(settings.REDIS_URL, socket_timeout=2,
                                                  socket_connect_timeout=2)
        started = time.perf_counter()
        try:
            await self._redis.ping()
        except (RedisError, OSError) as exc:
            logger.warning("metrics: Redis did not answer a PING: %s", exc)
            return 0.0, False
        return time.perf_counter() - started, True

    async def aclose(self) -> None:
        """Close the Redis client, if one was opened."""
        client, self._redis = self._redis, None
        if client is not None:
            await client.aclose()


async def _respond(send: Any, status: int, body: bytes, content_type: bytes,
                   extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()),
               (b"cache-control", b"no-store"), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


#: The application the edge routes ``/metrics`` to.
metrics_app = MetricsEndpoint()
