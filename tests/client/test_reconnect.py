"""Reconnecting as public API: ``Peer(reconnect=True)`` across a real server restart, and
PeerJS's ``reconnect()``-in-``disconnected`` habit paced by the back-off, on both servers."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from typing import Any

import pytest

from peerhub_client import Peer, ReconnectPolicy
from tests.servers import LiveServer

from .conftest import ReferenceServer
from .helpers import collector, next_event, peers, until, wait


@dataclass
class RestartablePeerhub:
    """A private peerhub that can be stopped and started again on the same port."""

    start_server: Callable[..., AbstractContextManager[LiveServer]]
    stack: ExitStack = field(default_factory=ExitStack)
    live: LiveServer | None = None
    port: int = 0
    host: str = "127.0.0.1"
    path: str = "/"
    key: str = "peerjs"

    def start(self) -> None:
        overrides = {"PORT": str(self.port)} if self.port else {}
        self.live = self.stack.enter_context(self.start_server(**overrides))
        self.port = self.live.port

    def stop(self) -> None:
        self.stack.close()
        self.live = None


@pytest.fixture(params=["reference", "peerhub"])
def restartable(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "reference":
        srv: ReferenceServer = request.getfixturevalue("private_reference_server")
        yield srv
        return
    hub = RestartablePeerhub(request.getfixturevalue("start_server"))
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()


def test_policy_delays_grow_with_jitter_up_to_the_limit() -> None:
    policy = ReconnectPolicy()
    assert [policy.base_delay(n) for n in range(7)] == [0, 0.5, 1, 2, 4, 8, 10]
    assert policy.base_delay(10_000) == 10
    rng = random.Random(3)
    for n in range(1, 8):
        for _ in range(50):
            assert policy.base_delay(n) / 2 <= policy.delay(n, rng) <= policy.base_delay(n)
    assert policy.delay(0) == 0
    assert not policy.gives_up(10**6)
    assert ReconnectPolicy(max_attempts=3).gives_up(4)
    assert not ReconnectPolicy(max_attempts=3).gives_up(3)
    for bad in ({"first": -1}, {"jitter": 2}, {"factor": 0.5}, {"max_attempts": 0}):
        with pytest.raises(ValueError):
            ReconnectPolicy(**bad)


async def test_reconnect_true_survives_a_server_restart(restartable: Any) -> None:
    srv = restartable
    bot_id = f"phoenix-{random.randrange(10**9)}"
    bot = Peer(bot_id, host=srv.host, port=srv.port, path=srv.path, key=srv.key,
               reconnect=True)  # fmt: skip
    try:
        opens, losses = collector(bot, "open"), collector(bot, "disconnected")
        await wait(bot.ready())
        bot.on("connection", lambda conn: conn.on("data", conn.send))
        await asyncio.to_thread(srv.stop)
        await until(lambda: len(losses) >= 3)  # it keeps trying while the server is down
        assert bot.id == bot_id and not bot.destroyed
        await asyncio.to_thread(srv.start)
        await until(lambda: len(opens) == 2 and bot.open, timeout=30)
        assert opens == [bot_id, bot_id]
        async with peers(srv, None, key=srv.key) as (me,):
            conn = await wait(me.connect(bot_id))
            got = next_event(conn, "data")
            conn.send("after restart")
            assert await wait(got) == "after restart"
    finally:
        bot.destroy()
        await bot.wait_closed()


async def test_the_peerjs_reconnect_habit_is_paced_and_comes_back(restartable: Any) -> None:
    srv = restartable
    peer = Peer(None, host=srv.host, port=srv.port, path=srv.path, key=srv.key)
    try:
        await wait(peer.ready())
        first_id = peer.id
        times: list[float] = []
        loop = asyncio.get_running_loop()

        def habit(_: Any) -> None:
            times.append(loop.time())
            peer.reconnect()  # what PeerJS users write; it must not spin

        peer.on("disconnected", habit)
        await asyncio.to_thread(srv.stop)
        await until(lambda: len(times) >= 4)
        # back-off with jitter: >= 0.25 + 0.5 + 1 s between the 1st and the 4th loss
        assert times[3] - times[0] >= 1.7, times
        await asyncio.to_thread(srv.start)
        await until(lambda: peer.open, timeout=30)
        assert peer.id == first_id
    finally:
        peer.destroy()
        await peer.wait_closed()


async def test_destroy_stops_pending_reconnection(restartable: Any) -> None:
    srv = restartable
    peer = Peer(None, host=srv.host, port=srv.port, path=srv.path, key=srv.key,
                reconnect=ReconnectPolicy(first=5, limit=5))  # fmt: skip
    await wait(peer.ready())
    losses = collector(peer, "disconnected")
    await asyncio.to_thread(srv.stop)
    await until(lambda: len(losses) == 1)
    assert not peer.disconnected  # an attempt is scheduled 2.5-5 s from now
    peer.destroy()
    await wait(peer.wait_closed())
    assert peer.destroyed and not peer._tasks.tasks()


async def test_readme_reconnecting_example_runs_as_written(peerhub_server: Any) -> None:
    from .readme import code_block, substitute

    code = substitute(code_block("Reconnecting"), {
        'host="127.0.0.1", port=9000': f"host={peerhub_server.host!r}, port={peerhub_server.port}",
        '"my-bot"': repr(f"my-bot-{random.randrange(10**9)}"),
        '"other-bot"': repr(f"other-bot-{random.randrange(10**9)}"),
    })  # fmt: skip
    namespace: dict[str, Any] = {}
    exec(code, namespace)  # noqa: S102 - the README's own example
    made: list[Peer] = [namespace["peer"], namespace["patient"]]
    try:
        await wait(asyncio.gather(*(p.ready() for p in made)))
        assert made[0].options.reconnect == ReconnectPolicy()
        assert made[1].options.reconnect == ReconnectPolicy(first=1.0, limit=30.0, max_attempts=20)
    finally:
        for p in made:
            p.destroy()
            await p.wait_closed()
