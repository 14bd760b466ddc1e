"""The echo bot CLI (``python -m peerhub_client echo``) as a real process, driven by Python peers."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

from peerhub_client import MediaStream

from .bots import run_bot
from .conftest import ReferenceServer
from .helpers import next_event, peers, wait


@pytest.fixture(params=["reference", "peerhub"])
def server(request: pytest.FixtureRequest) -> Any:
    name = "reference_server" if request.param == "reference" else "peerhub_server"
    return request.getfixturevalue(name)


MESSAGES: dict[str, list[Any]] = {
    "binary": [{"k": [1, "é", None]}, random.Random(5).randbytes(1_000_000)],
    "json": [{"k": [1, "é", None]}, "plain"],
    "raw": ["text", b"\x00\xffbytes"],
    "MsgPack": [{"k": b"\x01"}, random.Random(6).randbytes(200_000)],
}


async def test_echo_bot_echoes_every_serialization_and_media(server: Any) -> None:
    bot_id = f"echo-{random.randrange(10**9)}"
    async with run_bot("echo", server, "--id", bot_id) as bot:
        assert await bot.next_line() == bot_id
        async with peers(server, None) as (me,):
            for serialization, values in MESSAGES.items():
                conn = await wait(me.connect(bot_id, serialization=serialization))
                for value in values:
                    got = next_event(conn, "data")
                    conn.send(value)
                    assert await wait(got, 30) == value, serialization
                conn.close()
            call = me.call(bot_id, [AudioStreamTrack(), VideoStreamTrack()])
            stream: MediaStream = await wait(next_event(call, "stream"))
            assert sorted(t.kind for t in stream.get_tracks()) == ["audio", "video"]
            for _ in range(5):
                frame = await wait(stream.video.recv())  # type: ignore[union-attr]
            assert (frame.width, frame.height) == (640, 480)
            call.close()


async def test_echo_bot_without_id_prints_the_server_given_id(server: Any) -> None:
    async with run_bot("echo", server) as bot:
        bot_id = await bot.next_line()
        assert len(bot_id) > 8
        async with peers(server, None) as (me,):
            conn = await wait(me.connect(bot_id, serialization="json"))
            got = next_event(conn, "data")
            conn.send([1])
            assert await wait(got) == [1]


async def test_echo_bot_survives_a_server_restart(
    private_reference_server: ReferenceServer,
) -> None:
    srv = private_reference_server
    async with run_bot("echo", srv, "--id", "phoenix", key="sekrit") as bot:
        assert await bot.next_line() == "phoenix"
        srv.stop()
        await asyncio.sleep(1.5)  # a few failed attempts with backoff while it is down
        await asyncio.to_thread(srv.start)
        assert await bot.next_line(30) == "phoenix"  # printed again on re-open
        async with peers(srv, None, key="sekrit") as (me,):
            conn = await wait(me.connect("phoenix"))
            got = next_event(conn, "data")
            conn.send("after restart")
            assert await wait(got) == "after restart"


async def test_echo_bot_with_a_wrong_key_exits_with_an_error(
    private_reference_server: ReferenceServer,
) -> None:
    async with run_bot("echo", private_reference_server, "--id", "x1", key="nope") as bot:
        assert await asyncio.wait_for(bot.process.wait(), 20) == 1
