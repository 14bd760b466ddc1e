"""Cluster mode: several peerhub processes acting as one PeerServer through Redis.

A cluster node's :class:`~signalling.hub.Hub` is made of the Redis parts:
:class:`~signalling.redis_directory.RedisDirectory` (leases on ids),
:class:`~signalling.redis_queue.RedisQueue` (the offline queue any node can drain) and,
here, :class:`RedisBus`:

- Each node subscribes to its own channel (RESP2, see :func:`subscriber_client`). A
  flush hands its destinations' frames over in one script call (``HANDOVER``): their
  leases are looked up and, when one other node holds them all, it gets one message
  with every frame (:mod:`signalling.nodewire`'s format) in the same step; otherwise
  they are split by node and handed over again, one call per node.
- Presence: each node announces itself every sixth of ``ALIVE_TIMEOUT``; one survivor
  closes the session rows of a node whose presence ran out, whether or not it returns.
- When Redis is unreachable the subscription is retried with backoff; once it is back
  the hub re-asserts its leases and tells senders whose queued messages may be lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import orjson
from redis import asyncio as aioredis
from redis.exceptions import RedisError

from signalling import nodewire as wire
from signalling.cancellation import raise_if_cancelled
from signalling.errors import ClusterUnavailable
from signalling.hub import BusListener, Frames, Handed, Hub
from signalling.looptasks import runs_on_a_running_loop
from signalling.redis_directory import RedisDirectory
from signalling.redis_link import DRIVER_INFO, RedisLink, reached
from signalling.redis_queue import RedisQueue

logger = logging.getLogger(__name__)

_MAX_SPLITS = 5  # HANDOVER rounds for destinations whose holders keep changing


def subscriber_client(url: str) -> aioredis.Redis:
    """The client for this node's channel. RESP2: under RESP3 (redis-py's default) every
    published message is a push notification, and redis-py 8.1's push handler formats the
    whole message into a debug string whether or not debug logging is on (10-12% of a
    node's CPU in the cross-node burst, see docs/decisions.md)."""
    return aioredis.Redis.from_url(url, decode_responses=True, protocol=2,
                                   socket_connect_timeout=2, health_check_interval=5,
                                   driver_info=DRIVER_INFO)


class RedisBus:
    """This node's channel on Redis pub/sub, and the presence of every node."""

    shared = True

    def __init__(self, link: RedisLink, lease: float) -> None:
        self.link = link
        self.node_id = link.node_id
        self._names = link.names
        self._lease_ms = max(int(lease * 1000), 1000)
        self._subscribed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def subscribed(self) -> bool:
        """True while this node's channel subscription is confirmed by Redis."""
        return self._subscribed.is_set()

    def start(self, listener: BusListener) -> None:
        """Subscribe and announce this node on the running loop (idempotent)."""
        if self._tasks and runs_on_a_running_loop(self._tasks[0]):
            return
        loop = asyncio.get_running_loop()
        self._subscribed = asyncio.Event()
        self._tasks = [
            loop.create_task(self._listen_forever(listener), name="peerhub-listen"),
            loop.create_task(self._presence_forever(), name="peerhub-presence")]

    async def wait_subscribed(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for this node's subscription; tell if it is."""
        try:
            await asyncio.wait_for(self._subscribed.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def hand_over(self, destinations: list[list[Frames]]) -> list[Handed]:
        """``HANDOVER``: the destinations' leases looked up and, in the same step, their
        message published to the one other node holding them all (one round trip, the
        usual flush). Destinations held by several nodes are split by node and handed
        over again, each group in its own script call (one more round trip, pipelined),
        until every group is settled; one that keeps moving is left to the hub as not
        held (queueing re-checks its lease)."""
        handed: list[Handed] = [Handed.NOT_HELD] * len(destinations)
        groups = [list(range(len(destinations)))]
        for _ in range(_MAX_SPLITS):
            answers = await self._hand_over_groups(destinations, groups)
            split: dict[str, list[int]] = defaultdict(list)
            for group, answer in zip(groups, answers, strict=True):
                if answer[0] == 1:  # published to the one node holding them all
                    outcome = Handed.FORWARDED if int(answer[1]) > 0 else Handed.UNHEARD
                    for i in group:
                        handed[i] = outcome
                    continue
                for i, node in zip(group, answer[1:], strict=True):
                    if node == self.node_id:
                        handed[i] = Handed.HELD_HERE
                    elif node:
                        split[str(node)].append(i)
            groups = list(split.values())
            if not groups:
                break
        return handed

    async def _hand_over_groups(self, destinations: list[list[Frames]],
                                groups: list[list[int]]) -> list[list[Any]]:
        """One ``HANDOVER`` call per group of destinations (pipelined when several)."""
        names, script = self._names, self.link.scripts["HANDOVER"]

        def call(group: list[int], client: Any = None) -> Any:
            runs = [b for i in group for b in destinations[i]]
            return script(keys=[names.peer(destinations[i][0].key, destinations[i][0].dst)
                                for i in group],
                          args=[self.node_id, names.node(""), _pack(runs)], client=client)

        if len(groups) == 1:
            return [await reached(call(groups[0]))]
        pipe = self.link.redis.pipeline(transaction=False)
        for group in groups:
            await call(group, pipe)
        return list(await reached(pipe.execute()))

    async def moved(self, node: str, key: str, peer_id: str) -> None:
        """Tell ``node`` its peer ``peer_id`` took its id here."""
        await reached(self.link.redis.publish(
            self._names.node(node), wire.pack([wire.moved_entry(key, peer_id)], [])))

    async def ping(self) -> bool:
        """Tell whether Redis answers now."""
        try:
            return bool(await self.link.redis.ping())
        except RedisError:
            return False

    async def stop(self) -> None:
        """Stop listening and announcing; withdraw this node's presence (the link stays
        open for the hub's last flush; the directory and the store close it)."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            pipe = self.link.redis.pipeline(transaction=False)
            pipe.delete(self._names.alive(self.node_id))
            pipe.hdel(self._names.nodes(), self.node_id)
            await pipe.execute()
        except RedisError as exc:
            logger.warning("could not withdraw this node's presence (%s)", exc)

    # --- inbound ----------------------------------------------------------------------

    async def _listen_forever(self, listener: BusListener) -> None:
        delay, lost = 0.2, False
        while True:
            raise_if_cancelled()
            client = subscriber_client(self.link.url)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(self._names.node(self.node_id))
                    if lost:
                        await listener.on_restored()
                    delay, lost = 0.2, False
                    async for message in pubsub.listen():
                        raise_if_cancelled()  # a lost stop (Python 3.11)
                        if message.get("type") == "message":
                            await _on_message(message["data"], listener)
                        elif message.get("type") == "subscribe":
                            self._subscribed.set()  # Redis confirmed the subscription
            except (RedisError, OSError, ClusterUnavailable) as exc:
                lost = True
                self._subscribed.clear()
                logger.error("redis connection lost (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                await client.aclose()

    # --- presence: finding nodes that died --------------------------------------------

    async def _presence_forever(self) -> None:
        """Announce this node every sixth of the lease; close the sessions of nodes whose
        presence ran out (half a lease without a beat), so a dead node's rows end within
        ALIVE_TIMEOUT whether or not it returns."""
        period = self._lease_ms / 6000
        while True:
            raise_if_cancelled()  # a Redis call can lose a stop (Python 3.11)
            try:
                await self._announce()
                await self._reap_lost()
            except RedisError as exc:
                logger.error("could not renew this node's presence (%s)", exc)
            await asyncio.sleep(period)

    async def _announce(self) -> None:
        pipe = self.link.redis.pipeline(transaction=False)
        pipe.set(self._names.alive(self.node_id), "1", px=self._lease_ms // 2)
        pipe.hset(self._names.nodes(), self.node_id, orjson.dumps(
            {"name": self.link.node_name, "started": self.link.started_at}).decode())
        await pipe.execute()

    async def _reap_lost(self) -> None:
        redis = self.link.redis
        nodes: dict[str, Any] = {str(nid): orjson.loads(v) for nid, v in
                                 (await redis.hgetall(self._names.nodes())).items()}
        others = [nid for nid in nodes if nid != self.node_id]
        if not others:
            return
        pipe = redis.pipeline(transaction=False)
        for nid in others:
            pipe.exists(self._names.alive(nid))
        alive = dict(zip(others, await pipe.execute(), strict=True))
        for nid in others:
            if alive[nid]:
                continue
            # One survivor, once: the lock outlives the check period by far.
            if not await redis.set(self._names.reaping(nid), self.node_id, nx=True,
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
            await self.link.redis.delete(self._names.reaping(node_id))
            return
        logger.warning("node %s is lost; its sessions are closed", node_id)
        await self.link.redis.hdel(self._names.nodes(), node_id)


def _pack(runs: list[Frames]) -> str:
    """One channel message: a head entry per run of frames, then all their frames."""
    return wire.pack([wire.frames_entry(b.key, b.dst, b.queueable, b.frames) for b in runs],
                     [frame for b in runs for frame in b.frames])


async def _on_message(data: str, listener: BusListener) -> None:
    """Hand one channel message's entries to ``listener``."""
    try:
        entries = wire.unpack(data)
    except wire.UnreadableMessage as exc:
        logger.error("unreadable message on this node's channel (%s)", exc)
        return
    for kind, key, dst, queueable, frames in entries:
        if kind == "M":
            await listener.on_frames(key, dst, queueable, frames)
        else:
            listener.on_moved(key, dst)


def redis_hub(redis_url: str, prefix: str, node_name: str, queue_limit: int,
              expire_timeout: float, cleanup_interval: float, lease: float,
              sender_queue_limit: int = 0) -> Hub:
    """A hub whose directory, offline queue and bus live in Redis under ``prefix``."""
    link = RedisLink(redis_url, prefix, node_name)
    return Hub(RedisDirectory(link, lease),
               RedisQueue(link, queue_limit, expire_timeout, sender_queue_limit,
                          cleanup_interval),
               RedisBus(link, lease), cleanup_interval)
