"""Admission's own Redis connection (signalling.redis_wire): replies in order, redis-py's
exception classes, the URL's password and database, timeouts, a lost connection."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
from redis.exceptions import BusyLoadingError, NoScriptError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from signalling.redis_link import login, pack_command
from signalling.redis_wire import ReplyConnection, reply_error, supported
from tests.waiting import until


def test_error_replies_become_the_redis_py_classes_callers_catch() -> None:
    assert type(reply_error("NOSCRIPT No matching script.")) is NoScriptError
    assert type(reply_error("LOADING Redis is loading")) is BusyLoadingError
    assert type(reply_error("ERR unknown command")) is ResponseError


def test_login_is_auth_and_select_as_the_url_asks() -> None:
    assert login({"host": "h", "port": 1, "db": 0}) == []
    assert login({"password": "pw", "db": 3}) == [pack_command(["AUTH", "pw"]),
                                                  pack_command(["SELECT", "3"])]
    assert login({"username": "u", "password": "pw"}) == [pack_command(["AUTH", "u", "pw"])]
    assert supported({"host": "h"}) and not supported({"ssl_cert_reqs": "required"})


def _conn(url: str, **extra: Any) -> ReplyConnection:
    kwargs = dict(redis.asyncio.BlockingConnectionPool.from_url(url).connection_kwargs,
                  **extra)
    return ReplyConnection(kwargs, login(kwargs))


async def test_replies_answer_their_own_calls_in_order_errors_raised(
        private_redis: Any) -> None:
    conn = _conn(private_redis.url, socket_timeout=5)
    try:
        answers = await asyncio.gather(
            conn.call(pack_command(["SET", "a", "é\x00"])),
            conn.call(pack_command(["GET", "a"])),
            conn.call(pack_command(["EVALSHA", "0" * 40, "0"])),
            conn.call(pack_command(["INCR", "a"])),
            conn.call(pack_command(["LRANGE", "missing", "0", "-1"])),
            return_exceptions=True)
        assert answers[:2] == ["OK", "é\x00"]
        assert isinstance(answers[2], NoScriptError)
        assert isinstance(answers[3], ResponseError)
        assert answers[4] == []
    finally:
        await conn.disconnect()


async def test_the_urls_password_and_database_are_used_on_each_connection(
        private_redis: Any) -> None:
    def lock() -> None:
        admin = redis.Redis.from_url(private_redis.url)
        admin.config_set("requirepass", "s3cret")
        admin.close()

    lock()
    url = private_redis.url.replace("redis://", "redis://:s3cret@").replace("/0", "/2")
    conn = _conn(url)
    try:
        assert await conn.call(pack_command(["SET", "in2", "x"])) == "OK"
        private_redis.kill()
        private_redis.start()
        lock()
        try:  # the lost connection, unless it was seen closed before this call
            await conn.call(pack_command(["PING"]))
        except RedisConnectionError:
            pass
        assert await conn.call(pack_command(["SET", "again", "y"])) == "OK"  # logged in
        check = redis.Redis.from_url(url)
        assert (check.get("again"), check.dbsize()) == (b"y", 1)
        check.close()
    finally:
        await conn.disconnect()


async def test_a_reply_late_past_the_timeout_fails_its_call_and_the_next_call_works(
        private_redis: Any) -> None:
    conn = _conn(private_redis.url, socket_timeout=0.3)
    admin = redis.asyncio.Redis.from_url(private_redis.url)
    try:
        assert await conn.call(pack_command(["PING"])) == "PONG"
        await admin.execute_command("CLIENT", "PAUSE", "2000", "ALL")
        with pytest.raises(RedisTimeoutError):
            await conn.call(pack_command(["PING"]))
        await admin.execute_command("CLIENT", "UNPAUSE")

        async def answers() -> bool:
            try:
                return bool(await conn.call(pack_command(["ECHO", "back"])) == "back")
            except RedisTimeoutError:
                return False

        await until(answers)
    finally:
        await admin.aclose()
        await conn.disconnect()


def test_it_runs_on_uvloop_as_the_server_does(private_redis: Any) -> None:
    uvloop = pytest.importorskip("uvloop")

    async def calls() -> list[Any]:
        conn = _conn(private_redis.url, socket_timeout=5)
        try:
            return list(await asyncio.gather(conn.call(pack_command(["SET", "u", "1"])),
                                             conn.call(pack_command(["GET", "u"]))))
        finally:
            await conn.disconnect()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(calls()) == ["OK", "1"]
