"""The offline store in Redis: a late joiner on any node receives what waited for it.

One list per destination of JSON ``[src, frame]`` items (no id or payload can forge
another), a clock of queues by their first message's time that every node sweeps (each
queue is swept exactly once), and a sliding per-sender counter. Takes share their loop
turn's admission script call (:mod:`signalling.redis_admission`); puts of one flush go
out as one pipeline.
"""

from __future__ import annotations

import logging
import time

import orjson

from signalling.hub import Enqueued, Parcel
from signalling.offline import Expired
from signalling.redis_link import RedisLink, reached

logger = logging.getLogger(__name__)

_SWEEP_BATCH = 500
#: The ENQUEUE script's answers.
_OUTCOMES = {1: Enqueued.QUEUED, 0: Enqueued.FULL, -1: Enqueued.SENDER_FULL,
             2: Enqueued.ONLINE}


def queue_item(src: str, frame: str) -> str:
    """One offline-queue entry: a JSON array, so no id or payload can forge another."""
    return orjson.dumps([src, frame]).decode()


def parse_queue_item(item: str) -> tuple[str, str]:
    """``(src, frame)`` of a :func:`queue_item` entry."""
    src, frame = orjson.loads(item)
    return str(src), str(frame)


class RedisQueue:
    """The cluster's offline store."""

    def __init__(self, link: RedisLink, limit: int, expire_timeout: float,
                 sender_limit: int, cleanup_interval: float) -> None:
        self.link = link
        self._names = link.names
        self._limit = limit
        self._sender_limit = sender_limit
        self._expire_ms = int(expire_timeout * 1000)
        self._cleanup_interval = cleanup_interval
        self._admission = link.admission
        # (key, dst, local sender) -> when queued in Redis; if Redis loses its data
        # (a restart) these senders are told with EXPIRE instead of waiting in vain.
        self._queued_by_us: dict[tuple[str, str, str], float] = {}

    async def put(self, parcels: list[Parcel]) -> list[Enqueued]:
        """Queue the parcels in one pipeline; the script re-checks that each destination
        is still offline (:attr:`Enqueued.ONLINE` otherwise)."""
        names, enqueue = self._names, self.link.scripts["ENQUEUE"]
        pipe = self.link.redis.pipeline(transaction=False)
        for p in parcels:
            await enqueue(
                keys=[names.queue(p.key, p.dst), names.queue_clock(),
                      names.sender(p.key, p.src), names.peer(p.key, p.dst)],
                args=[queue_item(p.src, p.frame), p.limit or self._limit,
                      self._expire_ms * 3, self._sender_limit], client=pipe)
        results = await reached(pipe.execute())
        outcomes = [_OUTCOMES[int(r)] for r in results]
        now = time.monotonic()
        for p, outcome in zip(parcels, outcomes, strict=True):
            if outcome is Enqueued.QUEUED and p.local:
                self._queued_by_us[(p.key, p.dst, p.src)] = now
        return outcomes

    async def take(self, key: str, dst: str) -> list[str]:
        """Remove and return what waits for ``dst`` (in this loop turn's admission call)."""
        return [parse_queue_item(item)[1] for item in await self._admission.drain(key, dst)]

    async def expire(self, now: float) -> list[Expired]:
        """Take due queues (by Redis's clock; ``now`` is not used)."""
        flat = await reached(self.link.run_script(
            "SWEEP", [self._names.queue_clock()], [str(self._expire_ms), str(_SWEEP_BATCH)]))
        expired = []
        for name, items in zip(flat[::2], flat[1::2], strict=True):
            key, dst = self._names.split_queue(name)
            senders = tuple(dict.fromkeys(parse_queue_item(item)[0] for item in items))
            expired.append(Expired(key, dst, senders))
        self._forget_settled()
        return expired

    def _forget_settled(self) -> None:
        """Queued entries older than the expire window were delivered or EXPIREd."""
        horizon = time.monotonic() - self._expire_ms / 1000 - 2 * self._cleanup_interval
        self._queued_by_us = {k: t for k, t in self._queued_by_us.items() if t >= horizon}

    def possibly_lost(self) -> list[tuple[str, str, str]]:
        """Local senders with messages queued recently (Redis may have lost them)."""
        owed, self._queued_by_us = self._queued_by_us, {}
        return list(owed)

    def depth(self) -> int:
        """Messages this node's senders have waiting in Redis."""
        return len(self._queued_by_us)

    async def close(self) -> None:
        """Close the shared link."""
        await self.link.aclose()
