"""The one Redis connection the cluster parts of a node share.

:class:`RedisLink` holds the pooled asyncio client, the Lua scripts registered on it,
the Redis names under this cluster's prefix and this node's id; the directory, the
offline store and the node bus (``signalling.redis_directory``, ``redis_queue``,
``cluster``) each take it. Redis failures leave the parts as
:class:`~signalling.errors.ClusterUnavailable`.

The batched scripts (admission's claims, releases and drains, lease renewals, the sweep)
go through :meth:`RedisLink.run_script`: the same pool, connections and reply parser as
every other call, but the command is packed by :func:`pack_command` (a few bytecodes per
argument where redis-py's encoder and packer spend about a hundred) and sent on a pooled
connection directly, without ``execute_command``'s wrapping; the retry of a stale
connection and the reload of a script Redis lost are kept. Admission's one call per loop
turn (:mod:`signalling.redis_admission`) goes on a connection of its own to the pool's
Redis, since its batch task makes one call at a time: a
:class:`~signalling.redis_wire.ReplyConnection`, which writes the packed command and reads
the reply in a protocol callback instead of through redis-py's stream reader and timeout
wrappers (docs/decisions.md, "The cluster's connect path").
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable
from itertools import chain, repeat
from typing import Any, TypeVar

import redis
from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.driver_info import DriverInfo
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from signalling import redis_scripts as lua
from signalling.errors import ClusterUnavailable
from signalling.names import Names
from signalling.redis_admission import Admission
from signalling.redis_wire import ReplyConnection, supported

T = TypeVar("T")

_POOL_SIZE = 64
_POOL_WAIT = 5.0
#: What each new connection tells Redis (``CLIENT SETINFO``), made once: left to
#: redis-py, every connection object reads redis's package metadata again (1.7 ms each
#: on the 2-core machine against 12 us; pool growth and reconnects pay it).
DRIVER_INFO = DriverInfo(lib_version=redis.__version__)
_SCRIPTS = ("ADMIT", "REFRESH", "ENQUEUE", "SWEEP", "HANDOVER")
#: redis-py's connection classes that :class:`ReplyConnection` stands in for.
_PLAIN = (aioredis.Connection, aioredis.UnixDomainSocketConnection)
#: A connection of one caller's own: ours, or redis-py's where ours does not go (TLS).
OwnConnection = ReplyConnection | aioredis.Connection


def redis_client(url: str, pool_size: int = _POOL_SIZE) -> aioredis.Redis:
    """An asyncio Redis client whose callers wait for a free connection (never refused
    while the pool is busy), with one quick retry for a connection that went stale."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=pool_size, timeout=_POOL_WAIT, decode_responses=True,
        driver_info=DRIVER_INFO,
        socket_timeout=5, socket_connect_timeout=2, health_check_interval=10,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 1))
    return aioredis.Redis(connection_pool=pool)


def pack_command(parts: list[str]) -> bytes:
    """One RESP command (an array of bulk strings) from ``parts``, as Redis reads it; the
    loop over the parts runs in C (``map``, ``zip``), not in bytecodes."""
    data = list(map(str.encode, parts))
    return b"*%d\r\n" % len(data) + b"".join(chain.from_iterable(
        zip(map(b"$%d\r\n".__mod__, map(len, data)), data, repeat(b"\r\n"))))


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
        self._own: list[OwnConnection] = []
        self._closed = False
        #: This node's claims, releases and drains, one script call per loop turn.
        self.admission = Admission(self)

    def holder_value(self, token: str) -> str:
        """The value of a lease this node holds for ``token``: ``node|token``."""
        return f"{self.node_id}|{token}"

    def own_connection(self) -> OwnConnection:
        """A connection to the pool's Redis (same address, password, database, timeouts)
        kept out of the pool, for a caller that makes one call at a time on it
        (admission's batch task): no checkout, lock or release per call, and (a
        :class:`~signalling.redis_wire.ReplyConnection`) no stream reader, timeout task
        or health check either. Over TLS, a redis-py connection made as the pool's.
        Closed with the link."""
        pool = self.redis.connection_pool
        conn: OwnConnection
        if pool.connection_class in _PLAIN and supported(pool.connection_kwargs):
            conn = ReplyConnection(pool.connection_kwargs, login(pool.connection_kwargs))
        else:
            conn = pool.make_connection()
        self._own.append(conn)
        return conn

    async def run_script(self, name: str, keys: list[str], args: list[str],
                         on: OwnConnection | None = None) -> Any:
        """``EVALSHA`` of script ``name`` (of ``_SCRIPTS``) with ``keys`` and ``args``
        (strings), on a connection of the pool (or ``on``, an :meth:`own_connection`); the
        reply as redis-py parses it. A connection that fails (stale after a Redis
        restart) is reconnected and the call sent once more, as the client's retry does;
        a script Redis no longer has (``NOSCRIPT``, after a restart or ``SCRIPT FLUSH``)
        is loaded and called again. Failures are :class:`~redis.exceptions.RedisError`,
        as with any other call."""
        script = self.scripts[name]
        packed = pack_command(["EVALSHA", script.sha, str(len(keys)), *keys, *args])
        try:
            return await self._send(packed, on)
        except NoScriptError:
            await self.redis.script_load(script.script)
            return await self._send(packed, on)

    async def _send(self, packed: bytes, on: OwnConnection | None) -> Any:
        if isinstance(on, ReplyConnection):
            return await _call_own(on, packed)
        if on is not None:
            # Cancelled or failed between a command and its reply, redis-py's
            # read_response drops the connection (what is left unread cannot answer the
            # next call; the next call connects again), as the pool's checkout would.
            return await _call(on, packed)
        pool = self.redis.connection_pool
        conn = await pool.get_connection()
        try:
            return await _call(conn, packed)
        finally:
            await pool.release(conn)

    async def aclose(self) -> None:
        """Close the pooled connections and own ones (idempotent: every part calls it)."""
        if not self._closed:
            self._closed = True
            for conn in self._own:
                await conn.disconnect()
            await self.redis.aclose()


async def _call(conn: aioredis.Connection, packed: bytes) -> Any:
    """Send ``packed`` on ``conn`` and read the reply; once more on a fresh connection if
    ``conn`` was stale (a Redis restart)."""
    try:
        await conn.send_packed_command(packed)
        return await conn.read_response()
    except (RedisConnectionError, RedisTimeoutError):
        await conn.disconnect()
        await conn.send_packed_command(packed)  # connects again
        return await conn.read_response()


async def _call_own(conn: ReplyConnection, packed: bytes) -> Any:
    """:func:`_call` on a :class:`ReplyConnection`: once more on a new connection if the
    one it had was lost (a Redis restart) or timed out."""
    try:
        return await conn.call(packed)
    except (RedisConnectionError, RedisTimeoutError):
        await conn.disconnect()
        return await conn.call(packed)  # connects again


def login(connection_kwargs: dict[str, Any]) -> list[bytes]:
    """The commands a new connection sends before any other, as redis-py's would: AUTH
    when the URL has a password, SELECT for a database other than 0."""
    out = []
    password, username = connection_kwargs.get("password"), connection_kwargs.get("username")
    if password:
        out.append(pack_command(["AUTH", username, password] if username
                                else ["AUTH", password]))
    if int(connection_kwargs.get("db") or 0):
        out.append(pack_command(["SELECT", str(connection_kwargs["db"])]))
    return out


def split_holder(value: object) -> tuple[str, str]:
    """A lease's value (:meth:`RedisLink.holder_value`) as ``(node id, token)``; a node id
    holds no ``|``, so the token may."""
    node_id, _, token = str(value).partition("|")
    return node_id, token
