"""A Redis connection for one caller that sends packed commands and awaits the replies.

Admission's batch task (:mod:`signalling.redis_admission`) makes one script call per
loop turn on a connection of its own. Through redis-py each call wrote with an
``asyncio.wait_for`` around the stream's ``drain`` (a task per write), read through a
``StreamReader`` under an ``asyncio.timeout`` and checked the connection's health: about
a thousand bytecodes a call. :class:`ReplyConnection` is an :class:`asyncio.Protocol`
instead: a call is one ``transport.write`` of the command :func:`~signalling.redis_link.
pack_command` packed and a future answered from ``data_received``, where hiredis (the
parser redis-py uses here too) reads the replies in order.

Kept from redis-py's connection: the address, password, database and timeouts the pool
uses (a reply not in within ``socket_timeout`` fails its call and drops the connection,
as a read timeout does), its exception classes (``ConnectionError``, ``TimeoutError``,
``ResponseError``, ``NoScriptError``; so every caller's ``RedisError`` handling holds),
connecting again at the next call once the connection was lost. A caller cancelled while
its command is in Redis leaves its reply to be read and dropped: the next call gets its
own reply.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any, cast

import hiredis
from redis.exceptions import BusyLoadingError, NoScriptError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

_LOST = "Connection closed by server."


class WireProtocolError(RedisConnectionError):
    """Redis sent bytes that are not RESP: the connection cannot be trusted."""


def reply_error(message: str) -> RedisError:
    """The redis-py exception for an error reply (the classes its callers catch)."""
    if message.startswith("NOSCRIPT"):
        return NoScriptError(message)
    if message.startswith("LOADING"):
        return BusyLoadingError(message)
    return ResponseError(message)


def supported(connection_kwargs: dict[str, Any]) -> bool:
    """Tell whether a pool made with ``connection_kwargs`` (redis-py's, from the URL)
    connects in a way :class:`ReplyConnection` does too: TCP or a Unix socket, no TLS."""
    return not any(k.startswith("ssl") for k in connection_kwargs)


class _Wire(asyncio.Protocol):
    """One open connection: the futures of the commands sent on it, answered in order."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader(encoding="utf-8", errors="strict",
                                     replyError=reply_error, protocolError=WireProtocolError)
        self.waiting: deque[asyncio.Future[Any]] = deque()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        reader, waiting = self.reader, self.waiting
        reader.feed(data)
        try:
            while (reply := reader.gets()) is not False:
                fut = waiting.popleft()
                if fut.done():  # its caller left: the reply is read and dropped
                    continue
                if isinstance(reply, RedisError):
                    fut.set_exception(reply)
                else:
                    fut.set_result(reply)
        except (WireProtocolError, IndexError) as exc:  # not RESP, or a reply unasked for
            logger.warning("dropping a Redis connection: unreadable reply (%s)", exc)
            self.drop(WireProtocolError(f"unreadable reply from Redis: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.fail_all(RedisConnectionError(f"{_LOST} ({exc})" if exc else _LOST))

    @property
    def open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def drop(self, exc: Exception) -> None:
        transport, self.transport = self.transport, None
        if transport is not None:
            transport.abort()
        self.fail_all(exc)

    def fail_all(self, exc: Exception) -> None:
        waiting, self.waiting = self.waiting, deque()
        for fut in waiting:
            if not fut.done():
                fut.set_exception(exc)


class ReplyConnection:
    """One connection to Redis: :meth:`call` sends a packed command, returns its reply."""

    def __init__(self, connection_kwargs: dict[str, Any],
                 login: list[bytes] | None = None) -> None:
        self._kwargs = connection_kwargs
        self._timeout: float | None = connection_kwargs.get("socket_timeout")
        self._connect_timeout: float | None = connection_kwargs.get(
            "socket_connect_timeout", self._timeout)
        #: Commands sent first on each new connection (AUTH, SELECT), packed.
        self._login = login or []
        self._wire: _Wire | None = None

    async def call(self, packed: bytes) -> Any:
        """Send one packed command and return its reply (an error reply raised as its
        redis-py class). Connects first if needed; a reply not in within the timeout is
        :class:`~redis.exceptions.TimeoutError` and drops the connection."""
        wire = self._wire
        if wire is None or not wire.open:
            wire = await self._connect()
        return await self._send(wire, packed)

    async def disconnect(self) -> None:
        """Close the connection (the next call connects again)."""
        wire, self._wire = self._wire, None
        if wire is not None:
            wire.drop(RedisConnectionError("connection closed"))

    async def _send(self, wire: _Wire, packed: bytes) -> Any:
        assert wire.transport is not None
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        wire.waiting.append(fut)
        wire.transport.write(packed)
        if self._timeout is None:
            return await fut
        timer = loop.call_later(self._timeout, _timed_out, wire, fut)
        try:
            return await fut
        finally:
            timer.cancel()

    async def _connect(self) -> _Wire:
        loop = asyncio.get_running_loop()
        kw = self._kwargs
        try:
            async with asyncio.timeout(self._connect_timeout):
                if "path" in kw:
                    _, wire = await loop.create_unix_connection(_Wire, kw["path"])
                else:
                    _, wire = await loop.create_connection(
                        _Wire, kw.get("host", "localhost"), kw.get("port", 6379))
        except TimeoutError as exc:
            raise RedisTimeoutError("Timeout connecting to Redis") from exc
        except OSError as exc:
            raise RedisConnectionError(f"Error connecting to Redis: {exc}") from exc
        for command in self._login:
            await self._send(wire, command)
        self._wire = wire
        return wire


def _timed_out(wire: _Wire, fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        wire.drop(RedisTimeoutError("Timeout reading from Redis"))
