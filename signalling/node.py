"""This process as a node of the PeerServer: the one owner of its serving state.

A :class:`Node` holds the hub (its parts in memory, or in Redis with ``REDIS_URL``),
the per-address guard, the address bans, the counters (:class:`~signalling.metrics.Metrics`),
the session recorder, the key watcher, the tenant cache, the control-plane listener, the
readiness probe and the drain state, each built on first use. ``await node.start()``
starts the background work of every part, ``await node.stop()`` ends it (tests build
nodes of their own). ``get_node()`` gives the process's node;
``signalling.runtime.get_hub()``, ``get_ip_guard()``, ``metrics.get_metrics()``,
``sessions.get_recorder()``, ``keywatch.get_key_watcher()`` and
``apikeys.tenants.get_tenant()`` are shortcuts to its parts, so call sites stay one
line.

Draining (on SIGTERM): the node stops admitting peers (``/readyz`` answers 503, new
sockets get ``ERROR`` "Server is temporarily unavailable"), then closes its peers'
sockets with 1001 spread evenly over ``DRAIN_WINDOW`` seconds, each one's id released
before its socket closes (so messages for it are queued for its reconnect elsewhere,
not delivered to a closing socket), and only then lets the process exit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from django.conf import settings

from signalling.bans import BanList
from signalling.config import get_config
from signalling.guards import IpGuard
from signalling.hub import Hub
from signalling.looptasks import Running
from signalling.metrics import Metrics

if TYPE_CHECKING:
    from apikeys.tenants import TenantCache
    from signalling.control_listener import ControlListener
    from signalling.health import ReadinessProbe
    from signalling.keywatch import KeyWatcher
    from signalling.sessions import SessionRecorder

logger = logging.getLogger(__name__)

DRAIN_REASON = "server stopped"  # the session rows' close reason, as before drains
_DRAIN_TICK = 0.05
_SUBSCRIBE_GRACE = 5.0
#: Seconds one part may take to stop on SIGTERM before the node goes on without it (the
#: recorder gets longer: it writes the last session rows).
_PART_STOP_TIMEOUT = 5.0
_RECORDER_STOP_TIMEOUT = 10.0


class Node:
    """The serving state of one process, with start, stop and drain."""

    def __init__(self, name: str, redis_url: str, prefix: str, drain_window: float) -> None:
        self.name = name
        self.redis_url = redis_url
        self.prefix = prefix
        self.drain_window = drain_window
        self._hub: Hub | None = None
        self.metrics = Metrics()
        self._guard: IpGuard | None = None
        self._probe: ReadinessProbe | None = None
        self._control: ControlListener | None = None
        self._recorder: SessionRecorder | None = None
        self._key_watcher: KeyWatcher | None = None
        self._tenants: TenantCache | None = None
        self.bans = BanList()
        self._drain: asyncio.Task[None] | None = None
        self.draining = False
        # while these hold, the per-connection start checks are one C call each
        self._running = Running()  # the hub's, control listener's and lag sampler's tasks
        self._watching = Running()  # the key watcher's

    @property
    def clustered(self) -> bool:
        """True when this node shares peers with others through Redis."""
        return bool(self.redis_url)

    @property
    def hub(self) -> Hub:
        """The hub (built on first use)."""
        if self._hub is None:
            self._hub = self._make_hub()
        return self._hub

    @property
    def ip_guard(self) -> IpGuard:
        """The per-address admission guard."""
        if self._guard is None:
            cfg = get_config()
            self._guard = IpGuard(cfg.max_sockets_per_ip, cfg.connect_rate,
                                  cfg.connect_burst)
        return self._guard

    def ensure_started(self) -> None:
        """Start the background work on the running loop (idempotent, cheap: called for
        each connection): the hub's tasks, the control-plane listener and the metrics'
        loop-lag sampler (the key watcher starts with the first peer, or in
        :meth:`start`). Once they all run, this is one check until one of them ends."""
        if self._running.holds():
            return
        hub, control, metrics = self.hub, self.control, self.metrics
        hub.start()
        control.start()
        metrics.ensure_started()
        self._running.watch([*hub.tasks, *control.tasks, metrics.lag_task])

    def ensure_key_watcher(self) -> None:
        """Start the key watcher on the running loop unless it runs there (called for
        each admitted peer; one check while it runs)."""
        if self._watching.holds():
            return
        watcher = self.key_watcher
        watcher.ensure_started()
        self._watching.watch([watcher.task])

    async def start(self) -> None:
        """Start every part's background work and, in a cluster, wait (a few seconds at
        most) for this node's subscription, so it admits peers at once."""
        self.ensure_started()
        self.ensure_key_watcher()
        if self.hub.clustered:
            await self.hub.wait_subscribed(_SUBSCRIBE_GRACE)

    async def stop(self) -> None:
        """Stop every part's background work: the hub (its tasks, its presence in the
        cluster, its connections), the control listener, the key watcher, the lag
        sampler; then write what the session recorder holds. Peers are not closed here
        (:meth:`drain` does that first)."""
        if self._hub is not None:
            await _bounded("the hub", self._hub.stop(), _PART_STOP_TIMEOUT)
        if self._control is not None:
            await _bounded("the control listener", self._control.stop(), _PART_STOP_TIMEOUT)
        if self._key_watcher is not None:
            self._key_watcher.stop()
        self._running.forget()
        self._watching.forget()
        await _bounded("the lag sampler", self.metrics.stop(), _PART_STOP_TIMEOUT)
        if self._recorder is not None:
            await _bounded("the session recorder", self._recorder.stop(),
                           _RECORDER_STOP_TIMEOUT)

    @property
    def control(self) -> ControlListener:
        """The control-plane listener (kick, ban, key changes)."""
        if self._control is None:
            from signalling.control_listener import ControlListener

            self._control = ControlListener(
                self, settings.PEERHUB_CONTROL_RECONCILE_MS / 1000)
        return self._control

    @property
    def recorder(self) -> SessionRecorder:
        """The session recorder (batched database writes of session rows)."""
        if self._recorder is None:
            from signalling.sessions import SessionRecorder

            self._recorder = SessionRecorder(self.name,
                                             settings.PEERHUB_SESSION_RETENTION_DAYS,
                                             self.metrics)
        return self._recorder

    @property
    def key_watcher(self) -> KeyWatcher:
        """The key watcher (closes the peers of keys switched off; started lazily)."""
        if self._key_watcher is None:
            from signalling.keywatch import KeyWatcher

            self._key_watcher = KeyWatcher(settings.PEERHUB_KEY_WATCH_MS / 1000)
        return self._key_watcher

    def forget_key_watcher(self) -> None:
        """Stop the key watcher and build a new one on next use (tests)."""
        if self._key_watcher is not None:
            self._key_watcher.stop()
        self._key_watcher = None
        self._watching.forget()

    @property
    def tenants(self) -> TenantCache:
        """The tenant cache (a key's settings, one query per key per KEY_CACHE_SECONDS)."""
        if self._tenants is None:
            from apikeys.tenants import TenantCache

            self._tenants = TenantCache()
        return self._tenants

    @property
    def probe(self) -> ReadinessProbe:
        """The readiness checks behind ``/readyz``."""
        if self._probe is None:
            from signalling.health import ReadinessProbe

            self._probe = ReadinessProbe()
        return self._probe

    def _make_hub(self) -> Hub:
        cfg = get_config()
        if not self.redis_url:
            from signalling.hub_memory import memory_hub

            return memory_hub(cfg.queue_limit, cfg.expire_timeout, cfg.cleanup_interval,
                              cfg.sender_queue_limit)
        from signalling.cluster import redis_hub

        hub = redis_hub(self.redis_url, self.prefix, self.name, cfg.queue_limit,
                        cfg.expire_timeout, cfg.cleanup_interval, lease=cfg.alive_timeout,
                        sender_queue_limit=cfg.sender_queue_limit)
        logger.info("cluster mode: node %s on %s", hub.node_id, self.prefix)
        return hub

    # --- drain ----------------------------------------------------------------------

    def drain(self) -> asyncio.Task[None]:
        """Start draining (idempotent); the task ends when every peer is closed."""
        if self._drain is None:
            self.draining = True
            self.hub.accepting = False
            self._drain = asyncio.get_running_loop().create_task(
                self._drain_peers(), name="peerhub-drain")
        return self._drain

    async def _drain_peers(self) -> None:
        hub = self.hub
        peers = hub.endpoints()
        total = len(peers)
        logger.info("draining: closing %d peers over %.1fs", total, self.drain_window)
        started = time.monotonic()
        closed = 0
        while closed < total:
            due = total if self.drain_window <= 0 else min(
                total, int(total * (time.monotonic() - started) / self.drain_window) + 1)
            for ep in peers[closed:due]:
                await hub.unregister(ep)  # first: messages for it now wait in the queue
                await ep.shut(None, 1001, DRAIN_REASON)
            closed = due
            if closed < total:
                await asyncio.sleep(_DRAIN_TICK)
        for ep in hub.endpoints():  # any that slipped in
            await hub.unregister(ep)
            await ep.shut(None, 1001, DRAIN_REASON)
        await self.stop()
        logger.info("drained %d peers in %.1fs", total, time.monotonic() - started)


async def _bounded(part: str, stopping: Coroutine[Any, Any, None], timeout: float) -> None:
    """Await one part's stop, at most ``timeout`` seconds: a part that hangs (a Redis or
    database call that never answers) is named in the log and left behind, so that the
    process still exits after SIGTERM."""
    try:
        await asyncio.wait_for(stopping, timeout)
    except TimeoutError:
        logger.warning("stopping %s took over %.0fs; the node stops without it", part,
                       timeout)
    except Exception:  # noqa: BLE001 - one part's failure must not keep the others running
        logger.exception("stopping %s failed; the node stops without it", part)


_node: Node | None = None
# carried over a reset_node() (tests): rows and refusal counts not yet written
_kept_recorder: SessionRecorder | None = None
_kept_metrics: Metrics | None = None


def get_node() -> Node:
    """This process's node (created from settings on first use)."""
    global _node
    if _node is None:
        from peerhub.env import node_name

        _node = Node(node_name(), settings.REDIS_URL, settings.REDIS_PREFIX,
                     float(settings.PEERHUB_DRAIN_WINDOW))
        _node._recorder = _kept_recorder
        if _kept_metrics is not None:
            _node.metrics = _kept_metrics
    return _node


def reset_node() -> None:
    """Forget the node and the cached configuration (tests only).

    The session recorder and the counters are kept: they hold rows and refusal counts
    not yet written (and the recorder its exit hook)."""
    global _node, _kept_recorder, _kept_metrics
    if _node is not None:
        _node.forget_key_watcher()
        _kept_recorder = _node._recorder or _kept_recorder
        _kept_metrics = _node.metrics
    _node = None
    get_config.cache_clear()
