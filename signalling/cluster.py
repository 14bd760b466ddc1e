"""Cluster mode: several peerhub processes acting as one PeerServer through Redis.

- The directory (who holds which id, with which token, on which node) is a set of
  leases in Redis, claimed atomically by Lua scripts and renewed by each node every
  third of ``ALIVE_TIMEOUT``; a killed node's ids free themselves when their leases run
  out.
- Same-node delivery stays direct (the local table is checked first). Messages for
  another node are coalesced: everything queued while one flush is under way goes out
  in a single pipeline (one round trip for lookups, one for publishing), one PUBLISH per
  destination node per flush.
- The offline queue lives in Redis, so a late joiner on any node receives it; every
  node sweeps expired queues, and each queue is swept exactly once.
- When Redis is unreachable, messages that could not be handed over are reported to
  their senders with ``EXPIRE`` (never lost silently), and nodes reconnect, re-assert
  their leases and resume on their own.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

from signalling import nodewire as wire
from signalling import redis_scripts as lua
from signalling.batcher import Batcher
from signalling.decisions import Claim, Route, Where, decide_handover, decide_route, needs_lookup
from signalling.errors import ClusterUnavailable, NodeDraining
from signalling.hub import Endpoint, Limits, LocalHub
from signalling.looptasks import runs_on_a_running_loop
from signalling.names import Names
from signalling.protocol import (
    ID_TAKEN_FRAME,
    ClientMessage,
    expire_frame,
    relay_message,
)

logger = logging.getLogger(__name__)

_SWEEP_BATCH = 500
_SUBSCRIBE_WAIT = 5.0
_REFRESH_BATCH = 500
_CLAIM_BATCH = 500
_MAX_REROUTES = 50
_POOL_SIZE = 64
_POOL_WAIT = 5.0


def redis_client(url: str, pool_size: int = _POOL_SIZE) -> aioredis.Redis:
    """An asyncio Redis client whose callers wait for a free connection (never refused
    while the pool is busy), with one quick retry for a connection that went stale."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=pool_size, timeout=_POOL_WAIT, decode_responses=True,
        socket_timeout=5, socket_connect_timeout=2, health_check_interval=10,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 1))
    return aioredis.Redis(connection_pool=pool)


def subscriber_client(url: str) -> aioredis.Redis:
    """The client for this node's channel. RESP2: under RESP3 (redis-py's default) every
    published message is a push notification, and redis-py 8.1's push handler formats the
    whole message into a debug string whether or not debug logging is on (10-12% of a
    node's CPU in the cross-node burst, see docs/decisions.md)."""
    return aioredis.Redis.from_url(url, decode_responses=True, protocol=2,
                                   socket_connect_timeout=2, health_check_interval=5)


def queue_item(src: str, frame: str) -> str:
    """One offline-queue entry: a JSON array, so no id or payload can forge another."""
    return orjson.dumps([src, frame]).decode()


def parse_queue_item(item: str) -> tuple[str, str]:
    """``(src, frame)`` of a :func:`queue_item` entry."""
    src, frame = orjson.loads(item)
    return str(src), str(frame)


@dataclass(slots=True)
class _ClaimRequest:
    ep: Endpoint
    limits: Limits


@dataclass(slots=True)
class _Outgoing:
    sender: Endpoint
    key: str
    dst: str
    frame: str
    queueable: bool
    attempts: int = 0  # times it was routed again (its destination was moving)


#: An :class:`_Outgoing` as the outbox keeps it, under its destination's (key, dst):
#: (sender, frame, queueable, attempts). A tuple costs a tenth of the object on the
#: relay path (0.07 against 0.5 us); the object is made only where one is handled alone.
_Item = tuple[Endpoint, str, bool, int]


def _outgoing(pk: tuple[str, str], item: _Item) -> _Outgoing:
    return _Outgoing(item[0], pk[0], pk[1], item[1], item[2], item[3])


class RedisHub(LocalHub):
    """A :class:`LocalHub` whose directory, queue and cross-node relay live in Redis."""

    def __init__(self, redis_url: str, prefix: str, node_name: str, queue_limit: int,
                 expire_timeout: float, cleanup_interval: float, lease: float,
                 sender_queue_limit: int = 0) -> None:
        super().__init__(queue_limit, expire_timeout, cleanup_interval, sender_queue_limit)
        self._sender_limit = sender_queue_limit
        self.node_id = f"{node_name.replace('|', '_')}-{uuid.uuid4().hex[:8]}"
        self.node_name = node_name
        self._started_at = time.time()
        self.names = Names(prefix)
        self._url = redis_url
        self._lease_ms = max(int(lease * 1000), 1000)
        self._queue_limit = queue_limit
        self._expire_ms = int(expire_timeout * 1000)
        self._redis = redis_client(redis_url)
        self._scripts = {name: self._redis.register_script(getattr(lua, name))
                         for name in ("CLAIM_MANY", "RELEASE_MANY", "REFRESH", "ENQUEUE",
                                      "DRAIN_MANY", "SWEEP")}
        # Concurrent claims, releases and queue drains each go out as one script call.
        self._claims: Batcher[_ClaimRequest, tuple[Claim, str]] = Batcher(
            self._claim_batch, _CLAIM_BATCH, "claims", orphan=self._orphan_claim)
        self._releases: Batcher[tuple[str, str, str], int] = Batcher(
            self._release_batch, _CLAIM_BATCH, "releases")
        self._drains: Batcher[tuple[str, str], list[str]] = Batcher(
            self._drain_batch, _CLAIM_BATCH, "drains")
        # Messages for peers that are not here, per destination, until the next flush.
        self._outbox: dict[tuple[str, str], list[_Item]] = {}
        self._outbox_size = 0
        # (key, dst, local sender) -> when queued in Redis; if Redis loses its data
        # (a restart) these senders are told with EXPIRE instead of waiting in vain.
        self._queued_by_us: dict[tuple[str, str, str], float] = {}
        self._wake = asyncio.Event()
        self._subscribed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # --- background tasks -------------------------------------------------------------

    def _ensure_sweeper(self) -> None:
        if self._tasks and runs_on_a_running_loop(self._tasks[0]):
            return
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._subscribed = asyncio.Event()
        self._tasks = [loop.create_task(coro, name=name) for name, coro in (
            ("peerhub-flush", self._flush_forever()),
            ("peerhub-listen", self._listen_forever()),
            ("peerhub-refresh", self._refresh_forever()),
            ("peerhub-sweep", self._sweep_forever()),
            ("peerhub-presence", self._presence_forever()),
        )]

    @property
    def subscribed(self) -> bool:
        """True while this node's channel subscription is confirmed by Redis."""
        return self._subscribed.is_set()

    def start(self) -> None:
        """Start the background tasks now (they also start on first use)."""
        self._ensure_sweeper()

    async def stop(self) -> None:
        """Stop admitting, end the background tasks, withdraw this node's presence."""
        self.accepting = False
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.delete(self.names.alive(self.node_id))
            pipe.hdel(self.names.nodes(), self.node_id)
            await pipe.execute()
        except RedisError as exc:
            logger.warning("could not withdraw this node's presence (%s)", exc)
        await self._redis.aclose()

    async def wait_subscribed(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for this node's subscription; tell if it is."""
        try:
            await asyncio.wait_for(self._subscribed.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def ping(self) -> bool:
        """Tell whether Redis answers now."""
        try:
            return bool(await self._redis.ping())
        except RedisError:
            return False

    # --- registration -----------------------------------------------------------------

    def _value(self, ep: Endpoint) -> str:
        return f"{self.node_id}|{ep.token}"

    async def register(self, ep: Endpoint, limits: Limits) -> Claim:
        """Claim the id cluster-wide; the server limit counts this node's peers."""
        self._ensure_sweeper()
        if not self.accepting:
            raise NodeDraining("this node is draining")
        local = self._peers.get((ep.key, ep.peer_id))
        if local is None and len(self._peers) >= limits.server_limit:
            return Claim.LIMIT
        # A peer registered here must be able to receive from other nodes at once.
        if not self._subscribed.is_set() and not await self.wait_subscribed(_SUBSCRIBE_WAIT):
            raise ClusterUnavailable("not subscribed to this node's channel")
        try:
            claim, previous = await self._claims.submit(_ClaimRequest(ep, limits))
        except RedisError as exc:
            raise ClusterUnavailable(str(exc)) from exc
        if claim in (Claim.NEW, Claim.TAKEOVER):
            self._add_local(ep)
            if claim is Claim.TAKEOVER and previous != self.node_id:
                await self._publish(previous, [wire.moved_entry(ep.key, ep.peer_id)])
        return claim

    async def _claim_batch(self, batch: list[_ClaimRequest]) -> list[tuple[Claim, str]]:
        keys: list[str] = []
        args: list[Any] = [self.node_id, self._lease_ms]
        for r in batch:
            keys += [self.names.peer(r.ep.key, r.ep.peer_id), self.names.ids(r.ep.key)]
            args += [r.ep.token, r.limits.key_limit, r.ep.peer_id]
        flat = await self._scripts["CLAIM_MANY"](keys=keys, args=args)
        return [(Claim(outcome), str(previous))
                for outcome, previous in zip(flat[::2], flat[1::2], strict=True)]

    def _orphan_claim(self, request: _ClaimRequest, result: tuple[Claim, str]) -> None:
        """A claim whose caller went away (its socket closed meanwhile): give it back."""
        if result[0] in (Claim.NEW, Claim.TAKEOVER):
            asyncio.get_running_loop().create_task(self._release(request.ep))

    async def unregister(self, ep: Endpoint) -> bool:
        """Free the id locally and, if the lease is still ours, in Redis."""
        if not self._remove_local(ep):
            return False
        await self._release(ep)
        return True

    async def _release(self, ep: Endpoint) -> None:
        try:
            await self._releases.submit((ep.key, ep.peer_id, self._value(ep)))
        except RedisError as exc:
            logger.warning("could not release an id in redis (%s); its lease will expire",
                           exc)

    async def _release_batch(self, batch: list[tuple[str, str, str]]) -> list[int]:
        keys: list[str] = []
        args: list[str] = []
        for key, peer_id, value in batch:
            keys += [self.names.peer(key, peer_id), self.names.ids(key)]
            args += [value, peer_id]
        await self._scripts["RELEASE_MANY"](keys=keys, args=args)
        return [1] * len(batch)

    async def flush_queue(self, ep: Endpoint) -> None:
        """Deliver what the cluster queued for ``ep`` while it was offline."""
        try:
            items = await self._drains.submit((ep.key, ep.peer_id))
        except RedisError as exc:
            logger.warning("could not read the offline queue (%s)", exc)
            return
        for item in items:
            await ep.deliver(parse_queue_item(item)[1])

    async def _drain_batch(self, batch: list[tuple[str, str]]) -> list[list[str]]:
        keys = [self.names.queue_clock()] + [self.names.queue(k, d) for k, d in batch]
        return [list(items) for items in await self._scripts["DRAIN_MANY"](keys=keys)]

    # --- lookups ----------------------------------------------------------------------

    async def holder_token(self, key: str, peer_id: str) -> str | None:
        """The holder's token, from the cluster directory."""
        local = self._peers.get((key, peer_id))
        if local is not None:
            return local.token
        try:
            value = await self._redis.get(self.names.peer(key, peer_id))
        except RedisError as exc:
            raise ClusterUnavailable(str(exc)) from exc
        return None if value is None else str(value).partition("|")[2]

    async def peer_ids(self, key: str) -> list[str]:
        """Every id registered under ``key`` on any node."""
        try:
            now_ms = int((await self._redis.time())[0]) * 1000
            ids = await self._redis.zrangebyscore(self.names.ids(key), now_ms, "+inf")
        except RedisError as exc:
            raise ClusterUnavailable(str(exc)) from exc
        return [str(i) for i in ids]

    def keys_online(self) -> dict[str, int]:
        """Live peer count per key across the cluster (synchronous, for the admin)."""
        import redis

        client = redis.Redis.from_url(self._url, decode_responses=True, socket_timeout=5)
        try:
            now_ms = int(client.time()[0]) * 1000
            counts = {}
            for name in client.scan_iter(match=self.names.ids_pattern(), count=500):
                n = int(client.zcount(name, now_ms, "+inf"))
                if n:
                    counts[self.names.key_of_ids(name)] = n
            return counts
        finally:
            client.close()

    def local_keys_online(self) -> dict[str, int]:
        """Live peer count per key on this node only."""
        return super().keys_online()

    def queue_depth(self) -> int:
        """Messages this node's senders have waiting in Redis, plus its unsent outbox."""
        return len(self._queued_by_us) + self._outbox_size

    # --- relay ------------------------------------------------------------------------

    async def relay(self, src: Endpoint, msg: ClientMessage) -> None:
        """Deliver locally when possible; otherwise hand the message to the flusher,
        which looks the destination up in the cluster (``decide_handover``)."""
        dst = msg.dst
        target = None if dst is None else self._peers.get((src.key, dst))
        route = decide_route(msg.type, dst, target is not None)
        if route is Route.DELIVER:
            assert target is not None
            await target.deliver(relay_message(msg, src.peer_id))
        elif route is Route.UNREGISTER:
            await self.unregister(src)
        elif dst is not None and needs_lookup(msg.type, dst):
            # Not here: perhaps on another node. QUEUE means it may wait offline.
            # Posted without _ensure_sweeper: registering started the flusher.
            pk = (src.key, dst)
            waiting = self._outbox.get(pk)
            if waiting is None:
                waiting = self._outbox[pk] = []
            waiting.append((src, relay_message(msg, src.peer_id), route is Route.QUEUE, 0))
            self._outbox_size += 1
            self._wake.set()

    async def send_to(self, key: str, peer_id: str, frame: str) -> None:
        """Deliver a server frame wherever ``peer_id`` is; never queued."""
        ep = self._peers.get((key, peer_id))
        if ep is not None:
            await ep.deliver(frame)
        else:
            self._post(_Outgoing(_NOBODY, key, peer_id, frame, False))

    def _post(self, item: _Outgoing) -> None:
        self._ensure_sweeper()
        self._outbox.setdefault((item.key, item.dst), []).append(
            (item.sender, item.frame, item.queueable, item.attempts))
        self._outbox_size += 1
        self._wake.set()

    async def _flush_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._outbox, size, self._outbox_size = self._outbox, {}, self._outbox_size, 0
            if batch:
                await self._flush(batch, size)

    async def _flush(self, batch: dict[tuple[str, str], list[_Item]], size: int) -> None:
        try:
            await self._flush_or_raise(batch)
        except RedisError as exc:
            logger.error("redis unavailable while relaying %d messages (%s); "
                         "their senders get EXPIRE", size, exc)
            await self._expire_senders([_outgoing(pk, it) for pk, items in batch.items()
                                        for it in items if it[2]])

    def _where(self, node: str | None, pk: tuple[str, str]) -> Where:
        if node == self.node_id:
            # A lease of ours without a local endpoint is a claim in progress or one
            # being released: treated as nowhere (ENQUEUE then re-checks the lease).
            return Where.HERE if pk in self._peers else Where.NOWHERE
        return Where.NOWHERE if node is None else Where.ELSEWHERE

    async def _flush_or_raise(self, batch: dict[tuple[str, str], list[_Item]]) -> None:
        where = await self._locate(list(batch))
        per_node: dict[str, list[list[object]]] = defaultdict(list)  # head entries
        per_node_frames: dict[str, list[str]] = defaultdict(list)  # the body, in order
        per_node_runs: dict[str, list[tuple[tuple[str, str], list[_Item]]]] = defaultdict(list)
        offline: list[_Outgoing] = []
        for pk, items in batch.items():
            node = where.get(pk)
            place = self._where(node, pk)
            for queueable, run in _runs(items):
                route = decide_handover(place, queueable)
                if route is Route.FORWARD:
                    assert node is not None
                    frames = [it[1] for it in run]
                    per_node[node].append(wire.frames_entry(pk[0], pk[1], queueable, frames))
                    per_node_frames[node] += frames
                    per_node_runs[node].append((pk, run))
                elif route is Route.DELIVER:
                    await self._deliver_here(pk, run, offline)
                elif route is Route.QUEUE:
                    offline += [_outgoing(pk, it) for it in run]
        pipe = self._redis.pipeline(transaction=False)
        nodes = list(per_node)
        for node in nodes:
            pipe.publish(self.names.node(node), wire.pack(per_node[node], per_node_frames[node]))
        for b in offline:
            await self._enqueue_cmd(pipe, b)
        results = await pipe.execute()
        failed = [_outgoing(pk, it) for node, received in zip(nodes, results, strict=False)
                  if not received for pk, run in per_node_runs[node] for it in run if it[2]]
        queued = list(zip(offline, results[len(nodes):], strict=True))
        now = time.monotonic()
        for b, outcome in queued:
            if outcome == 1 and b.sender.token:  # a local peer, not a stand-in
                self._queued_by_us[(b.key, b.dst, b.sender.peer_id)] = now
        failed += [b for b, outcome in queued if outcome == 0]
        for b, outcome in queued:
            if outcome == 2:  # the destination came online meanwhile: route it again
                if b.attempts >= _MAX_REROUTES:
                    failed.append(b)
                else:
                    b.attempts += 1
                    self._post(b)
        await self._expire_senders(failed)
        for b in {id(b.sender): b for b, outcome in queued if outcome == -1}.values():
            await self.refuse_sender(b.sender)

    async def _deliver_here(self, pk: tuple[str, str], run: list[_Item],
                            offline: list[_Outgoing]) -> None:
        """Deliver to a peer that registered here since its messages were posted (if it
        left again meanwhile, what may wait offline goes to ``offline``)."""
        for n, it in enumerate(run):
            here = self._peers.get(pk)
            if here is None:
                offline += [_outgoing(pk, rest) for rest in run[n:] if rest[2]]
                return
            await here.deliver(it[1])

    async def _locate(self, targets: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
        pipe = self._redis.pipeline(transaction=False)
        for key, dst in targets:
            pipe.get(self.names.peer(key, dst))
        values = await pipe.execute()
        return {t: str(v).partition("|")[0] for t, v in zip(targets, values, strict=True)
                if v is not None}

    async def _enqueue_cmd(self, pipe: Any, b: _Outgoing) -> None:
        await self._scripts["ENQUEUE"](
            keys=[self.names.queue(b.key, b.dst), self.names.queue_clock(),
                  self.names.sender(b.key, b.sender.peer_id), self.names.peer(b.key, b.dst)],
            args=[queue_item(b.sender.peer_id, b.frame), b.sender.queue_limit or self._queue_limit,
                  self._expire_ms * 3, self._sender_limit], client=pipe)

    async def _expire_senders(self, items: list[_Outgoing]) -> None:
        for b in items:
            await b.sender.deliver(expire_frame(b.dst, b.sender.peer_id))

    async def _publish(self, node: str, entries: list[list[object]]) -> None:
        try:
            await self._redis.publish(self.names.node(node), wire.pack(entries, []))
        except RedisError as exc:
            logger.warning("could not notify node %s (%s)", node, exc)

    # --- inbound from other nodes -----------------------------------------------------

    async def _listen_forever(self) -> None:
        delay, lost = 0.2, False
        while True:
            client = subscriber_client(self._url)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(self.names.node(self.node_id))
                    if lost:
                        logger.warning("redis connection restored; re-asserting %d peers",
                                       len(self._peers))
                        await self._refresh_all()
                        await self._expire_possibly_lost()
                    delay, lost = 0.2, False
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            await self._on_node_message(message["data"])
                        elif message.get("type") == "subscribe":
                            self._subscribed.set()  # Redis confirmed the subscription
            except (RedisError, OSError) as exc:
                lost = True
                self._subscribed.clear()
                logger.error("redis connection lost (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                await client.aclose()

    async def _on_node_message(self, data: str) -> None:
        try:
            entries = wire.unpack(data)
        except wire.UnreadableMessage as exc:
            logger.error("unreadable message on this node's channel (%s)", exc)
            return
        for kind, key, dst, queueable, frames in entries:
            if kind == "M":
                await self._deliver_inbound(key, dst, queueable, frames)
            else:
                self._drop_moved(key, dst)

    async def _deliver_inbound(self, key: str, dst: str, queueable: bool,
                               frames: list[str]) -> None:
        pk = (key, dst)
        for n, frame in enumerate(frames):
            ep = self._peers.get(pk)
            if ep is None:
                if queueable:
                    # The peer left or moved between lookup and arrival: keep them for it.
                    for rest in frames[n:]:
                        src = orjson.loads(rest).get("src", "")
                        self._post(_Outgoing(_Ghost(key, src, self), key, dst, rest, True))
                return
            await ep.deliver(frame)

    async def _expire_possibly_lost(self) -> None:
        """After an outage, tell local senders whose queued messages Redis may have lost."""
        owed, self._queued_by_us = self._queued_by_us, {}
        if owed:
            logger.warning("telling %d senders their queued messages may be lost", len(owed))
        for key, dst, sender in owed:
            await self.send_to(key, sender, expire_frame(dst, sender))

    def _forget_settled(self) -> None:
        """Queued entries older than the expire window were delivered or EXPIREd."""
        horizon = time.monotonic() - self._expire_ms / 1000 - 2 * self._cleanup_interval
        self._queued_by_us = {k: t for k, t in self._queued_by_us.items() if t >= horizon}

    def _drop_moved(self, key: str, peer_id: str) -> None:
        """Another node took over this id with the same token: forget the local one."""
        ep = self._peers.get((key, peer_id))
        if ep is not None:
            self._remove_local(ep)

    # --- leases -----------------------------------------------------------------------

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self._lease_ms / 3000)
            try:
                await self._refresh_all()
            except RedisError as exc:
                logger.error("could not renew leases (%s)", exc)

    async def _refresh_all(self) -> None:
        endpoints = list(self._peers.values())
        for start in range(0, len(endpoints), _REFRESH_BATCH):
            chunk = endpoints[start:start + _REFRESH_BATCH]
            keys: list[str] = []
            args: list[Any] = [self._lease_ms]
            for ep in chunk:
                keys += [self.names.peer(ep.key, ep.peer_id), self.names.ids(ep.key)]
                args += [self._value(ep), ep.peer_id]
            for position in await self._scripts["REFRESH"](keys=keys, args=args):
                await self._lost_lease(chunk[int(position) - 1])

    async def _lost_lease(self, ep: Endpoint) -> None:
        logger.warning("id %r was claimed elsewhere while redis was away", ep.peer_id)
        if self._remove_local(ep):
            await ep.shut(ID_TAKEN_FRAME, 1008, "id taken during redis outage")

    # --- presence: finding nodes that died --------------------------------------------

    async def _presence_forever(self) -> None:
        """Announce this node every sixth of the lease; close the sessions of nodes whose
        presence ran out (half a lease without a beat), so a dead node's rows end within
        ALIVE_TIMEOUT whether or not it returns."""
        period = self._lease_ms / 6000
        while True:
            try:
                await self._announce()
                await self._reap_lost()
            except RedisError as exc:
                logger.error("could not renew this node's presence (%s)", exc)
            await asyncio.sleep(period)

    async def _announce(self) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(self.names.alive(self.node_id), "1", px=self._lease_ms // 2)
        pipe.hset(self.names.nodes(), self.node_id, orjson.dumps(
            {"name": self.node_name, "started": self._started_at}).decode())
        await pipe.execute()

    async def _reap_lost(self) -> None:
        nodes: dict[str, Any] = {str(nid): orjson.loads(v) for nid, v in
                 (await self._redis.hgetall(self.names.nodes())).items()}
        others = [nid for nid in nodes if nid != self.node_id]
        if not others:
            return
        pipe = self._redis.pipeline(transaction=False)
        for nid in others:
            pipe.exists(self.names.alive(nid))
        alive = dict(zip(others, await pipe.execute(), strict=True))
        for nid in others:
            if alive[nid]:
                continue
            # One survivor, once: the lock outlives the check period by far.
            if not await self._redis.set(self.names.reaping(nid), self.node_id, nx=True,
                                         px=max(self._lease_ms * 10, 60_000)):
                continue
            await self._reap(nid, nodes)

    async def _reap(self, node_id: str, nodes: dict[str, Any]) -> None:
        from asgiref.sync import sync_to_async
        from django.db import DatabaseError

        from signalling.lost import close_lost_sessions

        dead = nodes[node_id]
        name, started = str(dead["name"]), float(dead["started"])
        later = [float(n["started"]) for nid, n in nodes.items()
                 if nid != node_id and n["name"] == name and float(n["started"]) > started]
        since = datetime.fromtimestamp(started - 1, UTC)
        until = datetime.fromtimestamp(min(later), UTC) if later else None
        try:
            await sync_to_async(close_lost_sessions, thread_sensitive=False)(
                name, since, until)
        except DatabaseError as exc:
            logger.error("could not close the sessions of lost node %s (%s); will retry",
                         node_id, exc)
            await self._redis.delete(self.names.reaping(node_id))
            return
        logger.warning("node %s is lost; its sessions are closed", node_id)
        await self._redis.hdel(self.names.nodes(), node_id)

    # --- expiry -----------------------------------------------------------------------

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._cleanup_interval)
            try:
                await self.expire_now(0.0)
            except RedisError as exc:
                logger.error("could not sweep the offline queue (%s)", exc)
            else:
                self._forget_settled()

    async def expire_now(self, now: float) -> None:
        """Take due queues from Redis and send each waiting sender one EXPIRE."""
        flat = await self._scripts["SWEEP"](keys=[self.names.queue_clock()],
                                            args=[self._expire_ms, _SWEEP_BATCH])
        for name, items in zip(flat[::2], flat[1::2], strict=True):
            key, dst = self.names.split_queue(name)
            for sender in dict.fromkeys(parse_queue_item(item)[0] for item in items):
                await self.send_to(key, sender, expire_frame(dst, sender))

    async def close_all(self, frame: str | None, code: int, reason: str) -> None:
        """Close local sockets, then release their leases."""
        endpoints = list(self._peers.values())
        await super().close_all(frame, code, reason)
        for ep in endpoints:
            await self.unregister(ep)


def _runs(items: list[_Item]) -> list[tuple[bool, list[_Item]]]:
    """``items`` cut into runs of the same ``queueable``, in order (usually one run)."""
    first = items[0][2]
    if all(it[2] is first for it in items):
        return [(first, items)]
    runs: list[tuple[bool, list[_Item]]] = []
    for it in items:
        if runs and runs[-1][0] == it[2]:
            runs[-1][1].append(it)
        else:
            runs.append((it[2], [it]))
    return runs


class _Ghost:
    """Stands for a sender on another node when re-queueing a message."""

    def __init__(self, key: str, peer_id: str, hub: RedisHub) -> None:
        self.key, self.peer_id, self.token, self._hub = key, peer_id, "", hub
        self.queue_limit = 0

    async def deliver(self, frame: str) -> None:
        await self._hub.send_to(self.key, self.peer_id, frame)

    async def shut(self, frame: str | None, code: int, reason: str = "") -> None:
        return None


class _Nobody:
    key = peer_id = token = ""
    queue_limit = 0

    async def deliver(self, frame: str) -> None:
        return None

    async def shut(self, frame: str | None, code: int, reason: str = "") -> None:
        return None


_NOBODY = _Nobody()
