"""Two Python peers in one process (real aiortc) through a real PeerServer.

Every test runs against the reference peerjs-server (npm ``peer``) and against peerhub.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

from peerhub_client import DataConnection, MediaConnection, MediaStream, PeerError

from .helpers import collector, next_event, peers, until, wait


@pytest.fixture(params=["reference", "peerhub"])
def server(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(
        "reference_server" if request.param == "reference" else "peerhub_server"
    )


def echo_everything(conn: DataConnection) -> None:
    conn.on("data", conn.send)


SAMPLES: dict[str, list[Any]] = {
    "binary": [
        {"a": 1},
        "hé😀",
        [1, 2.5, None, True],
        b"\x00\x01\xff",
        {"nested": {"b": [b"x"]}},
        -(2**40),
    ],
    "binary-utf8": [{"a": "é"}],
    "json": [{"a": [1, "x", None]}, "text", 3.25, [True, False]],
    "raw": ["a text frame", b"\x00binary\xff"],
    "none": ["classic name for raw"],
    "MsgPack": [{"a": 1}, b"\x01\x02", [None, 1.5, "x"], 2**40],
}


@pytest.mark.parametrize("serialization", list(SAMPLES))
async def test_data_round_trip_in_each_serialization(server: Any, serialization: str) -> None:
    async with peers(server, None, None) as (alice, bob):
        bob.on("connection", echo_everything)
        conn = await wait(alice.connect(bob.id, serialization=serialization, reliable=True))
        for value in SAMPLES[serialization]:
            conn.send(value)
        received = []
        async for data in conn:
            received.append(data)
            if len(received) == len(SAMPLES[serialization]):
                break
        assert received == SAMPLES[serialization]


async def test_one_megabyte_binary_message_is_chunked_and_reassembled_unordered(
    server: Any,
) -> None:
    payload = random.Random(1).randbytes(1_000_000)
    async with peers(server, None, None) as (alice, bob):
        bob.on("connection", echo_everything)
        conn = await wait(alice.connect(bob.id))  # reliable=False: an unordered channel
        assert conn.reliable is False and conn.data_channel is not None
        assert conn.data_channel.ordered is False
        conn.send({"blob": payload, "n": 1})
        echoed = await wait(next_event(conn, "data"), 30)
        assert echoed == {"blob": payload, "n": 1}


async def test_connection_options_reach_the_remote_side(server: Any) -> None:
    async with peers(server, None, None) as (alice, bob):
        incoming = next_event(bob, "connection")
        conn = alice.connect(bob.id, label="chat", metadata={"user": "Al"}, serialization="json")
        remote: DataConnection = await wait(incoming)
        await wait(conn)
        assert (remote.peer, remote.label, remote.metadata) == (alice.id, "chat", {"user": "Al"})
        assert (remote.serialization, remote.reliable) == ("json", False)
        assert remote.connection_id == conn.connection_id and conn.connection_id.startswith("dc_")
        assert conn.peer == bob.id and conn.provider is alice
        await wait(remote)
        assert list(alice.connections) == [bob.id] and bob.connections[alice.id] == [remote]


async def test_async_iteration_yields_messages_sent_before_iterating(server: Any) -> None:
    async with peers(server, None, None) as (alice, bob):
        incoming = next_event(bob, "connection")
        conn = await wait(alice.connect(bob.id, reliable=True))
        remote = await wait(incoming)
        await wait(remote)
        for i in range(50):
            conn.send(i)
        await until(lambda: remote._inbox.qsize() == 50)  # all held before anyone reads
        got = []
        async for data in remote:
            got.append(data)
            if len(got) == 50:
                break
        assert got == list(range(50))


@pytest.mark.parametrize("flush", [False, True])
async def test_closing_a_connection_closes_the_remote_side(server: Any, flush: bool) -> None:
    async with peers(server, None, None) as (alice, bob):
        incoming = next_event(bob, "connection")
        conn = await wait(alice.connect(bob.id))
        remote = await wait(incoming)
        await wait(remote)
        remote_closed, local_closed = next_event(remote, "close"), next_event(conn, "close")
        conn.close(flush=flush)
        await wait(remote_closed)
        await wait(local_closed)
        assert not conn.open and not remote.open
        await until(lambda: not alice.connections and not bob.connections)


async def test_send_before_open_emits_not_open_yet(server: Any) -> None:
    async with peers(server, None, None) as (alice, bob):
        conn = alice.connect(bob.id)
        errors = collector(conn, "error")
        conn.send("too early")
        assert [e.type for e in errors] == ["not-open-yet"]
        await wait(conn)


async def test_json_message_over_16300_bytes_emits_message_too_big(server: Any) -> None:
    async with peers(server, None, None) as (alice, bob):
        conn = await wait(alice.connect(bob.id, serialization="json"))
        errors = collector(conn, "error")
        conn.send("x" * 20000)
        assert [(e.type, e.message) for e in errors] == [
            ("message-too-big", "Message too big for JSON channel")
        ]


async def test_media_call_is_answered_with_the_callers_tracks_relayed(server: Any) -> None:
    from aiortc.contrib.media import MediaRelay

    async with peers(server, None, None) as (alice, bob):
        relay = MediaRelay()

        def answer(call: MediaConnection) -> None:
            call.answer(lambda stream: [relay.subscribe(t) for t in stream.get_tracks()])

        bob.on("call", answer)
        call = alice.call(bob.id, [AudioStreamTrack(), VideoStreamTrack()], metadata={"m": 1})
        assert call.connection_id.startswith("mc_")
        stream: MediaStream = await wait(next_event(call, "stream"))
        assert sorted(t.kind for t in stream.get_tracks()) == ["audio", "video"]
        assert call.open
        frame = await wait(stream.video.recv())  # type: ignore[union-attr]
        assert frame.width > 0
        await wait(stream.audio.recv())  # type: ignore[union-attr]
        remote_call = bob.connections[alice.id][0]
        assert isinstance(remote_call, MediaConnection) and remote_call.metadata == {"m": 1}
        hung_up = next_event(remote_call, "close")
        call.close()
        await wait(hung_up)


async def test_taken_id_gives_unavailable_id(server: Any) -> None:
    async with peers(server, "taken-id") as (_first,):
        with pytest.raises(PeerError) as info:
            async with peers(server, "taken-id"):
                pass
        assert info.value.type == "unavailable-id"
        assert info.value.message == 'ID "taken-id" is taken'


async def test_invalid_id_gives_invalid_id(server: Any) -> None:
    with pytest.raises(PeerError) as info:
        async with peers(server, "bad id!"):
            pass
    assert (info.value.type, info.value.message) == ("invalid-id", 'ID "bad id!" is invalid')


async def test_peer_events_open_disconnected_close(server: Any) -> None:
    async with peers(server, "events-peer") as (peer,):
        assert peer.open and peer.id == "events-peer"
        disconnected, closed = next_event(peer, "disconnected"), next_event(peer, "close")
        peer.disconnect()
        assert await wait(disconnected) == "events-peer"
        assert peer.disconnected and not peer.open
        errors = collector(peer, "error")
        late = peer.connect("someone")
        assert [e.type for e in errors] == ["disconnected"] and late.closed
        peer.reconnect()
        await wait(peer.ready())
        assert peer.open and peer.id == "events-peer" and not peer.disconnected
        peer.destroy()
        await wait(closed)
        assert peer.destroyed
