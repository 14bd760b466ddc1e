"""The cluster directory in Redis: leases on ids, claimed and released in batches.

Each id is a lease ``{prefix}:peer:…`` = ``node|token`` plus a member of its key's
sorted set scored by lease expiry; each node renews its leases every third of
``ALIVE_TIMEOUT``, so a killed node's ids free themselves. Concurrent claims and
releases are coalesced (:class:`~signalling.batcher.Batcher`): a crowd of a thousand
registrations costs a handful of script calls. The claim script takes an id exactly
when :func:`~signalling.decisions.decide_claim` admits it (the atomic mirror of that
rule) and returns what it saw, so the hub decides from the same :class:`Seen`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import redis

from signalling.batcher import Batcher
from signalling.errors import ClusterUnavailable
from signalling.hub import ADMITTED, Endpoint, Seen
from signalling.names import Names
from signalling.redis_link import RedisLink, reached, split_holder

logger = logging.getLogger(__name__)

_CLAIM_BATCH = 500
_REFRESH_BATCH = 500


@dataclass(slots=True)
class _ClaimRequest:
    ep: Endpoint
    key_limit: int  # -1: this node is full


class RedisDirectory:
    """The directory of a cluster, shared by every node on one Redis prefix."""

    shared = True

    def __init__(self, link: RedisLink, lease: float) -> None:
        self.link = link
        self._names = link.names
        self._lease_ms = max(int(lease * 1000), 1000)
        self.renew_every: float | None = self._lease_ms / 3000
        self._claims: Batcher[_ClaimRequest, Seen] = Batcher(
            self._claim_batch, _CLAIM_BATCH, "claims", orphan=self._orphan_claim)
        self._releases: Batcher[tuple[str, str, str], int] = Batcher(
            self._release_batch, _CLAIM_BATCH, "releases")

    async def claim(self, ep: Endpoint, key_limit: int, node_full: bool) -> Seen:
        """Claim ``ep``'s id cluster-wide (batched with concurrent claims)."""
        try:
            return await self._claims.submit(_ClaimRequest(ep, -1 if node_full else key_limit))
        except redis.RedisError as exc:
            raise ClusterUnavailable(str(exc)) from exc

    async def _claim_batch(self, batch: list[_ClaimRequest]) -> list[Seen]:
        names = self._names
        keys: list[str] = []
        args: list[str] = [self.link.node_id, str(self._lease_ms)]
        for r in batch:
            keys += [names.peer(r.ep.key, r.ep.peer_id), names.ids(r.ep.key)]
            args += [r.ep.token, str(r.key_limit), r.ep.peer_id]
        flat = await self.link.run_script("CLAIM_MANY", keys, args)
        return [Seen(bool(held), str(token), bool(full), str(node))
                for held, token, full, node in zip(flat[::4], flat[1::4], flat[2::4],
                                                   flat[3::4], strict=True)]

    def _orphan_claim(self, request: _ClaimRequest, seen: Seen) -> None:
        """A claim whose caller went away (its socket closed meanwhile): give it back."""
        if seen.claim(request.ep.token) in ADMITTED:
            asyncio.get_running_loop().create_task(self.release(request.ep))

    async def release(self, ep: Endpoint) -> None:
        """Free ``ep``'s id if the lease is still this node's for its token."""
        try:
            await self._releases.submit(
                (ep.key, ep.peer_id, self.link.holder_value(ep.token)))
        except redis.RedisError as exc:
            logger.warning("could not release an id in redis (%s); its lease will expire",
                           exc)

    async def _release_batch(self, batch: list[tuple[str, str, str]]) -> list[int]:
        keys: list[str] = []
        args: list[str] = []
        for key, peer_id, value in batch:
            keys += [self._names.peer(key, peer_id), self._names.ids(key)]
            args += [value, peer_id]
        await self.link.run_script("RELEASE_MANY", keys, args)
        return [1] * len(batch)

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
