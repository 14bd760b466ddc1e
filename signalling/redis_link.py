"""The one Redis connection the cluster parts of a node share.

:class:`RedisLink` holds the pooled asyncio client, the Lua scripts registered on it,
the Redis names under this cluster's prefix and this node's id; the directory, the
offline store and the node bus (``signalling.redis_directory``, ``redis_queue``,
``cluster``) each take it. Redis failures leave the parts as
:class:`~signalling.errors.ClusterUnavailable`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable
from typing import Any, TypeVar

from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

from signalling import redis_scripts as lua
from signalling.errors import ClusterUnavailable
from signalling.names import Names

T = TypeVar("T")

_POOL_SIZE = 64
_POOL_WAIT = 5.0
_SCRIPTS = ("CLAIM_MANY", "RELEASE_MANY", "REFRESH", "ENQUEUE", "DRAIN_MANY", "SWEEP",
            "HANDOVER")


def redis_client(url: str, pool_size: int = _POOL_SIZE) -> aioredis.Redis:
    """An asyncio Redis client whose callers wait for a free connection (never refused
    while the pool is busy), with one quick retry for a connection that went stale."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=pool_size, timeout=_POOL_WAIT, decode_responses=True,
        socket_timeout=5, socket_connect_timeout=2, health_check_interval=10,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 1))
    return aioredis.Redis(connection_pool=pool)


async def reached(call: Awaitable[T]) -> T:
    """Await a Redis call; its failure becomes :class:`ClusterUnavailable`."""
    try:
        return await call
    except RedisError as exc:
        raise ClusterUnavailable(str(exc)) from exc


class RedisLink:
    """Client, scripts, names and node id of one node of the cluster."""

    def __init__(self, url: str, prefix: str, node_name: str) -> None:
        self.url = url
        self.names = Names(prefix)
        self.node_name = node_name
        self.node_id = f"{node_name.replace('|', '_')}-{uuid.uuid4().hex[:8]}"
        self.started_at = time.time()
        self.redis = redis_client(url)
        self.scripts: dict[str, Any] = {name: self.redis.register_script(getattr(lua, name))
                                        for name in _SCRIPTS}
        self._closed = False

    def holder_value(self, token: str) -> str:
        """The value of a lease this node holds for ``token``: ``node|token``."""
        return f"{self.node_id}|{token}"

    async def aclose(self) -> None:
        """Close the pooled connections (idempotent: every part calls it)."""
        if not self._closed:
            self._closed = True
            await self.redis.aclose()


def split_holder(value: object) -> tuple[str, str]:
    """A lease's value (:meth:`RedisLink.holder_value`) as ``(node id, token)``; a node id
    holds no ``|``, so the token may."""
    node_id, _, token = str(value).partition("|")
    return node_id, token
