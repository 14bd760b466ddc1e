"""No event and no message is lost: held events, sticky ``open``, one receive queue.

Real aiortc peers through a real PeerServer (peerjs-server and peerhub).
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from peerhub_client import DataConnection, Peer, PeerError
from peerhub_client.events import MAX_HELD, EventEmitter

from .helpers import TIMEOUT, next_event, peers, until, wait
from .readme import code_block


@pytest.fixture(params=["reference", "peerhub"])
def server(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(
        "reference_server" if request.param == "reference" else "peerhub_server"
    )


async def open_pair(alice: Peer, bob: Peer, **options: Any) -> tuple[DataConnection, DataConnection]:
    incoming = next_event(bob, "connection")
    conn = await wait(alice.connect(bob.id, reliable=True, **options))
    remote: DataConnection = await wait(incoming)
    await wait(remote)
    return conn, remote


async def test_a_connection_made_while_the_peer_was_offline_waits_for_a_late_handler(
    server: Any,
) -> None:
    late_id = f"late-{random.randrange(10**9)}"
    async with peers(server, None) as (alice,):
        conn = alice.connect(late_id, serialization="json", reliable=True)
        # the OFFER leaves once the local offer is set: nobody is `late_id` yet
        await until(lambda: conn.peer_connection is not None
                    and conn.peer_connection.localDescription is not None)  # fmt: skip
        bob = Peer(late_id, host=server.host, port=server.port, path=server.path)
        try:
            await wait(bob.ready())
            # the OFFER arrived with OPEN and was emitted with no handler: it is held
            await until(lambda: bool(bob.connections))
            got: asyncio.Future[DataConnection] = asyncio.get_running_loop().create_future()
            bob.on("connection", got.set_result)  # attached late, as the old README did
            remote = await wait(got)
            assert remote.peer == alice.id
            await wait(conn)
            opened = asyncio.get_running_loop().create_future()
            remote.on("open", lambda: opened.set_result(True))  # sticky: already open
            assert await wait(opened)
            conn.send("hi")
            assert await wait(remote.recv()) == "hi"
        finally:
            bob.destroy()
            await bob.wait_closed()


async def test_three_anext_calls_after_three_sends_give_the_three_messages(server: Any) -> None:
    async with peers(server, None, None) as (alice, bob):
        conn, remote = await open_pair(alice, bob)
        for value in ["a", "b", "c"]:
            conn.send(value)
        got = [await wait(anext(aiter(remote))) for _ in range(3)]
        assert got == ["a", "b", "c"]


async def test_recv_and_iteration_mixed_in_every_way_deliver_every_message_in_order(
    server: Any,
) -> None:
    async with peers(server, None, None) as (alice, bob):
        conn, remote = await open_pair(alice, bob)
        got: list[Any] = []
        for i in range(20):
            conn.send(i)
        got += [await wait(remote.recv()) for _ in range(5)]  # 0-4
        async for data in remote:  # 5-9, then a break
            got.append(data)
            if data == 9:
                break
        got.append(await wait(anext(aiter(remote))))  # 10
        got += await wait(asyncio.gather(*(remote.recv() for _ in range(4))))  # 11-14
        got += [await wait(remote.recv()) for _ in range(5)]  # 15-19
        waiting = asyncio.ensure_future(remote.recv())
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(remote.recv(), 0.05)  # cancelled while nothing came
        conn.send(20)
        conn.send(21)
        got.append(await wait(waiting))
        got.append(await wait(remote.recv()))
        # a data handler attached now gets what waits first, then new messages
        conn.send(22)
        await until(lambda: remote._inbox.qsize() == 1)
        handled: list[Any] = []
        remote.on("data", handled.append)
        conn.send(23)
        await until(lambda: len(handled) == 2)
        remote.off("data", handled.append)
        conn.send(24)
        got += [*handled, await wait(remote.recv())]
        assert got == list(range(25))


async def test_iteration_ends_after_the_messages_sent_before_a_close(server: Any) -> None:
    async with peers(server, None, None) as (alice, bob):
        conn, remote = await open_pair(alice, bob)
        for i in range(5):
            conn.send(i)
        conn.close(flush=True)  # PeerJS's in-band close, after the messages
        got = [data async for data in remote]
        assert got == [0, 1, 2, 3, 4]
        with pytest.raises(PeerError) as info:
            await wait(remote.recv())
        assert info.value.type == "connection-closed"
        assert [data async for data in remote] == []


async def test_readme_receiving_example_runs_as_written(server: Any) -> None:
    namespace: dict[str, Any] = {}
    exec(code_block("Receiving"), namespace)  # noqa: S102 - the README's own example
    async with peers(server, None, None) as (alice, bob):

        def reply_then_close(conn: DataConnection) -> None:
            async def run() -> None:
                assert await conn.recv() == "hello"
                for word in ["one", "two", "three"]:
                    conn.send(word)
                conn.close(flush=True)

            conn.on("open", lambda: asyncio.ensure_future(run()))

        bob.on("connection", reply_then_close)
        result = await asyncio.wait_for(namespace["talk"](alice, bob.id), TIMEOUT)
        assert result == ["one", "two", "three"]


def test_held_events_are_bounded_and_handed_over_in_order() -> None:
    class Thing(EventEmitter):
        held_events = frozenset({"thing"})

    thing = Thing()
    for i in range(MAX_HELD + 5):
        assert thing.emit("thing", i) is False
    seen: list[int] = []
    thing.once("thing", seen.append)  # once: takes one, the rest stay held
    assert seen == [0]
    thing.on("thing", seen.append)
    assert seen == list(range(MAX_HELD))
    assert thing.emit("other") is False and "other" not in thing._held
