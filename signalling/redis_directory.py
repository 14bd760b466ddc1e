"""The cluster directory in Redis: leases on ids, claimed and released in batches.

Each id is a lease ``{prefix}:peer:…`` = ``node|token`` plus a member of its key's
sorted set scored by lease expiry; each node renews its leases every third of
``ALIVE_TIMEOUT``, so a killed node's ids free themselves. Claims and releases go to
Redis with the rest of their loop turn's admission work in one script call
(:class:`~signalling.redis_admission.Admission`): a crowd of a thousand registrations
costs a handful of script calls. A claim takes an id exactly when
:func:`~signalling.decisions.decide_claim` admits it (the atomic mirror of that rule)
and returns what it saw, so the hub decides from the same :class:`Seen`.
"""

from __future__ import annotations

from typing import Any

import redis

from signalling.hub import Endpoint, Seen
from signalling.names import Names
from signalling.redis_link import RedisLink, reached, split_holder

_REFRESH_BATCH = 500


class RedisDirectory:
    """The directory of a cluster, shared by every node on one Redis prefix."""

    shared = True

    def __init__(self, link: RedisLink, lease: float) -> None:
        self.link = link
        self._names = link.names
        self._lease_ms = max(int(lease * 1000), 1000)
        self.renew_every: float | None = self._lease_ms / 3000
        self._admission = link.admission

    async def claim(self, ep: Endpoint, key_limit: int, node_full: bool) -> Seen:
        """Claim ``ep``'s id cluster-wide (in this loop turn's admission call)."""
        return await self._admission.claim(ep, -1 if node_full else key_limit,
                                           self._lease_ms)

    async def release(self, ep: Endpoint) -> None:
        """Free ``ep``'s id if the lease is still this node's for its token (a failure is
        logged; the lease then expires)."""
        await self._admission.release(ep.key, ep.peer_id, ep.token)

    async def holder(self, key: str, peer_id: str) -> str | None:
        """The holder's token, from the lease."""
        value = await reached(self.link.redis.get(self._names.peer(key, peer_id)))
        return None if value is None else split_holder(value)[1]

    async def peer_ids(self, key: str) -> list[str]:
        """The ids under ``key`` whose lease has not run out."""
        return await reached(live_ids(self.link.redis, self._names, key))

    def keys_online(self) -> dict[str, int]:
        """Live peer count per key across the cluster (synchronous, for the admin)."""
        client = redis.Redis.from_url(self.link.url, decode_responses=True, socket_timeout=5)
        try:
            now_ms = int(client.time()[0]) * 1000
            counts = {}
            for name in client.scan_iter(match=self._names.ids_pattern(), count=500):
                n = int(client.zcount(name, now_ms, "+inf"))
                if n:
                    counts[self._names.key_of_ids(name)] = n
            return counts
        finally:
            client.close()

    async def renew(self, endpoints: list[Endpoint]) -> list[Endpoint]:
        """Renew our leases (re-creating them after a Redis restart), in batches."""
        lost: list[Endpoint] = []
        for start in range(0, len(endpoints), _REFRESH_BATCH):
            chunk = endpoints[start:start + _REFRESH_BATCH]
            keys: list[str] = []
            args: list[str] = [str(self._lease_ms)]
            for ep in chunk:
                keys += [self._names.peer(ep.key, ep.peer_id), self._names.ids(ep.key)]
                args += [self.link.holder_value(ep.token), ep.peer_id]
            positions = await reached(self.link.run_script("REFRESH", keys, args))
            lost += [chunk[int(p) - 1] for p in positions]
        return lost

    async def close(self) -> None:
        """Close the shared link."""
        await self.link.aclose()


async def live_ids(r: Any, names: Names, key: str) -> list[str]:
    """The ids under ``key`` whose lease has not run out, read with client ``r`` (by
    Redis's clock, so every node and Django process agrees)."""
    now_ms = int((await r.time())[0]) * 1000
    return [str(i) for i in await r.zrangebyscore(names.ids(key), now_ms, "+inf")]
