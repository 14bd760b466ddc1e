"""The in-memory parts of the :class:`~signalling.hub.Hub`: the embedded single node.

The directory is a dict of tokens, the offline store wraps
:class:`~signalling.offline.OfflineQueue`, and the bus has no other node to talk to.
"""

from __future__ import annotations

import time

from signalling.hub import (
    ADMITTED,
    BusListener,
    Endpoint,
    Enqueued,
    Frames,
    Handed,
    Hub,
    Parcel,
    PeerKey,
    Seen,
    tally,
)
from signalling.offline import Expired, OfflineQueue, QueueFull, SenderQueueFull

LOCAL_NODE = "local"


class MemoryDirectory:
    """Ids held in this process: ``(key, id) -> token``, with a count per key."""

    shared = False
    renew_every: float | None = None

    def __init__(self) -> None:
        self._tokens: dict[PeerKey, str] = {}
        self._per_key: dict[str, int] = {}

    async def claim(self, ep: Endpoint, key_limit: int, node_full: bool) -> Seen:
        """Look at ``ep``'s id and take it when :func:`decide_claim` admits it."""
        pk = (ep.key, ep.peer_id)
        token = self._tokens.get(pk)
        if token is not None:
            seen = Seen(True, token, False, LOCAL_NODE)
        else:
            full = node_full or (key_limit > 0 and self._per_key.get(ep.key, 0) >= key_limit)
            seen = Seen(False, "", full, "")
        if seen.claim(ep.token) in ADMITTED:
            if token is None:
                tally(self._per_key, ep.key, 1)
            self._tokens[pk] = ep.token
        return seen

    async def release(self, ep: Endpoint) -> None:
        """Free ``ep``'s id if its token still holds it."""
        pk = (ep.key, ep.peer_id)
        if self._tokens.get(pk) != ep.token:
            return
        del self._tokens[pk]
        tally(self._per_key, ep.key, -1)

    async def holder(self, key: str, peer_id: str) -> str | None:
        """The token holding the id, or None."""
        return self._tokens.get((key, peer_id))

    async def peer_ids(self, key: str) -> list[str]:
        """The ids held under ``key``, oldest first."""
        return [pid for (k, pid) in self._tokens if k == key]

    def keys_online(self) -> dict[str, int]:
        """Held ids per key."""
        return dict(self._per_key)

    async def renew(self, endpoints: list[Endpoint]) -> list[Endpoint]:
        """Nothing to renew: ids here hold no lease."""
        return []

    async def close(self) -> None:
        """Nothing to close."""


class MemoryQueue:
    """The offline store of one process (an :class:`OfflineQueue` behind the protocol)."""

    def __init__(self, limit: int, expire_after: float, sender_limit: int = 0) -> None:
        self.queue = OfflineQueue(limit, expire_after, sender_limit)

    async def put(self, parcels: list[Parcel]) -> list[Enqueued]:
        """Queue each parcel (its clock is ``time.monotonic()``)."""
        now = time.monotonic()
        return [self._put(p, now) for p in parcels]

    def _put(self, p: Parcel, now: float) -> Enqueued:
        try:
            self.queue.push(p.key, p.dst, p.src, p.frame, now, p.limit)
        except QueueFull:
            return Enqueued.FULL
        except SenderQueueFull:
            return Enqueued.SENDER_FULL
        return Enqueued.QUEUED

    async def take(self, key: str, dst: str) -> list[str]:
        """Remove and return what waits for ``dst``."""
        return self.queue.drain(key, dst)

    async def expire(self, now: float) -> list[Expired]:
        """Remove the queues older than the timeout at ``now`` (monotonic)."""
        return self.queue.expire(now)

    def possibly_lost(self) -> list[tuple[str, str, str]]:
        """Nothing here outlives an outage unseen."""
        return []

    def depth(self) -> int:
        """Messages waiting in every queue."""
        return self.queue.queued()

    async def close(self) -> None:
        """Nothing to close."""


class LoopbackBus:
    """The bus of a node alone: always subscribed, with nobody else to reach."""

    shared = False

    def __init__(self, node_id: str = LOCAL_NODE) -> None:
        self.node_id = node_id

    @property
    def subscribed(self) -> bool:
        """Always: this node hears itself."""
        return True

    def start(self, listener: BusListener) -> None:
        """Nothing to receive from."""

    async def wait_subscribed(self, timeout: float) -> bool:
        """Subscribed already."""
        return True

    async def hand_over(self, destinations: list[list[Frames]]) -> list[Handed]:
        """No node but this one: every destination is here or nowhere, the hub's to
        tell."""
        return [Handed.HELD_HERE] * len(destinations)

    async def moved(self, node: str, key: str, peer_id: str) -> None:
        """No other node to tell."""

    async def ping(self) -> bool:
        """Always answers."""
        return True

    async def stop(self) -> None:
        """Nothing to stop."""


def memory_hub(queue_limit: int, expire_timeout: float, cleanup_interval: float,
               sender_queue_limit: int = 0) -> Hub:
    """A hub whose three parts live in this process (the embedded single node)."""
    return Hub(MemoryDirectory(), MemoryQueue(queue_limit, expire_timeout, sender_queue_limit),
               LoopbackBus(), cleanup_interval)
