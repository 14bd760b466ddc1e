"""Admission's Redis work, one script call per loop turn.

Every claim, release and offline-queue drain that the nodes' sockets submit within one
event-loop iteration (and while the previous call is in flight) goes to Redis as one
``ADMIT`` script call (``signalling.redis_scripts``), which runs them in the order they
were submitted, each exactly as it would run alone: a claim is atomic and exact
cluster-wide, a key's limit counts the claims and releases before it. The directory
(:mod:`signalling.redis_directory`) and the offline store (:mod:`signalling.redis_queue`)
submit here through their shared :class:`~signalling.redis_link.RedisLink`, so a crowd
arriving costs one Batcher, one connection and one round trip per turn where three
separate batches cost three (docs/decisions.md, "The cluster's connect path"). A claim
also tells whether anything waits in the id's offline queue, so a peer with nothing
queued (the usual case) is admitted without a drain.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from itertools import chain
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from signalling.batcher import Batcher
from signalling.errors import ClusterUnavailable
from signalling.hub import ADMITTED, Endpoint, Seen

if TYPE_CHECKING:
    from signalling.redis_link import RedisLink

logger = logging.getLogger(__name__)
_BATCH = 500

#: One operation of the script: its keys, its arguments (the first names the kind:
#: ``c`` claim, ``r`` release, ``d`` drain) and, for a claim, the endpoint claiming.
Operation = tuple[list[str], list[str], Endpoint | None]

_keys = itemgetter(0)
_args = itemgetter(1)


class Admission:
    """The claims, releases and drains of one node, batched into one script call."""

    def __init__(self, link: RedisLink) -> None:
        self._link = link
        self._names = link.names
        self._batch: Batcher[Operation, Any] = Batcher(self._run, _BATCH, "admission",
                                                        orphan=self._orphan)
        # The batch task makes one call at a time: one connection of its own serves it.
        self._conn = link.own_connection()

    async def claim(self, ep: Endpoint, key_limit: int, lease_ms: int) -> Seen:
        """Claim ``ep``'s id for ``lease_ms``; ``key_limit`` -1: this node is full (only a
        takeover is admitted). What the script saw, for ``Seen.claim``, and whether
        anything waits in the id's offline queue (``Seen.queued``); Redis failing is
        :class:`~signalling.errors.ClusterUnavailable`."""
        names = self._names
        try:
            held, token, full, node, queued = await self._batch.submit((
                [names.peer(ep.key, ep.peer_id), names.ids(ep.key),
                 names.queue(ep.key, ep.peer_id)],
                ["c", ep.token, str(key_limit), ep.peer_id, str(lease_ms)], ep))
        except RedisError as exc:
            raise ClusterUnavailable(str(exc)) from exc
        return Seen(held == 1, token, full == 1, node, queued == 1)

    async def release(self, key: str, peer_id: str, token: str) -> bool:
        """Free ``peer_id`` if its lease is still this node's for ``token``; tell if it was.
        Redis failing is logged, not raised: the lease then runs out by itself (no
        renewal keeps it), so the id is free again within the lease."""
        names = self._names
        try:
            freed = await self._batch.submit((
                [names.peer(key, peer_id), names.ids(key)],
                ["r", self._link.holder_value(token), peer_id], None))
        except RedisError as exc:
            logger.warning("could not release an id in redis (%s); its lease will expire",
                           exc)
            return False
        return freed == 1

    async def drain(self, key: str, dst: str) -> list[str]:
        """Remove and return the items queued for ``dst`` under ``key``; Redis failing is
        :class:`~signalling.errors.ClusterUnavailable`."""
        try:
            items: list[str] = await self._batch.submit(
                ([self._names.queue(key, dst)], ["d"], None))
        except RedisError as exc:
            raise ClusterUnavailable(str(exc)) from exc
        return items

    async def _run(self, batch: list[Operation]) -> list[Any]:
        keys: Iterable[str] = chain.from_iterable(map(_keys, batch))
        args: Iterable[str] = chain.from_iterable(map(_args, batch))
        answers: list[Any] = await self._link.run_script(
            "ADMIT", [self._names.queue_clock(), *keys], [self._link.node_id, *args],
            self._conn)
        return answers

    def _orphan(self, op: Operation, answer: Any) -> None:
        """A claim whose caller went away (its socket closed meanwhile): give it back."""
        ep = op[2]
        if ep is not None:
            held, token, full, node, _ = answer
            if Seen(held == 1, token, full == 1, node).claim(ep.token) in ADMITTED:
                asyncio.get_running_loop().create_task(
                    self.release(ep.key, ep.peer_id, ep.token))

    @property
    def waiting(self) -> int:
        """Operations not yet handed to Redis."""
        return self._batch.waiting
