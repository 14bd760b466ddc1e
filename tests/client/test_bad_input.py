"""A remote peer that sends garbage: errors on that connection only, bounded memory, no crash."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from websockets.asyncio.client import connect

from peerhub_client import ChunkLimits, DataConnection, PeerError
from peerhub_client.binarypack import pack

from .helpers import collector, next_event, peers, until, wait


@pytest.fixture(params=["reference", "peerhub"])
def server(request: pytest.FixtureRequest) -> Any:
    name = "reference_server" if request.param == "reference" else "peerhub_server"
    return request.getfixturevalue(name)


async def open_pair(
    alice: Any, bob: Any, serialization: str = "binary"
) -> tuple[DataConnection, DataConnection]:
    incoming = next_event(bob, "connection")
    conn = await wait(alice.connect(bob.id, serialization=serialization, reliable=True))
    remote: DataConnection = await wait(incoming)
    await wait(remote)
    return conn, remote


def inject(conn: DataConnection, frame: bytes | str) -> None:
    """Put a frame on the wire below the serializer, as a misbehaving peer would."""
    assert conn.data_channel is not None
    conn.data_channel.send(frame)


async def still_echoes(
    conn: DataConnection, remote: DataConnection, value: Any = "still fine"
) -> None:
    got = next_event(remote, "data")
    conn.send(value)
    assert await wait(got) == value


@pytest.mark.parametrize(
    ("serialization", "frame", "needle"),
    [
        ("binary", b"\xc4\xc4\xc4", "unknown tag 0xc4"),
        ("binary", b"\xdb\xff\xff\xff\xff\x00", "truncated data"),
        ("binary", "a text frame", "text frame"),
        ("json", b"{not json", "invalid JSON"),
        ("MsgPack", b"\xc1", "invalid MsgPack"),
    ],
)
async def test_garbage_frame_emits_error_and_connection_keeps_working(
    server: Any, serialization: str, frame: bytes | str, needle: str
) -> None:
    async with peers(server, None, None) as (alice, bob):
        conn, remote = await open_pair(alice, bob, serialization)
        other, other_remote = await open_pair(alice, bob, serialization)
        other_errors = collector(other_remote, "error")
        errors = collector(remote, "error")
        inject(conn, frame)
        await until(lambda: bool(errors))
        err: PeerError = errors[0]
        assert err.type == "bad-data" and needle in err.message and alice.id in err.message
        assert remote.open
        await still_echoes(conn, remote, {"ok": 1} if serialization != "raw" else "ok")
        await still_echoes(other, other_remote, [1, 2])
        assert other_errors == []


async def test_chunk_bomb_total_is_refused_with_bounded_memory(server: Any) -> None:
    async with peers(server, None, None) as (alice, bob):
        conn, remote = await open_pair(alice, bob)
        errors = collector(remote, "error")
        for n in range(20):
            inject(conn, pack({"__peerData": 7, "n": n, "data": bytes(16300), "total": 5_000_000}))
        await until(lambda: len(errors) == 20)
        assert "chunk total 5000000 exceeds the limit" in errors[0].message
        assert remote._serializer is not None and remote._serializer.pending() == 0
        await still_echoes(conn, remote)


async def test_outstanding_chunk_bytes_are_capped(server: Any) -> None:
    limits = ChunkLimits(max_pending_bytes=100_000)
    async with peers(server, None, None, limits=limits) as (alice, bob):
        conn, remote = await open_pair(alice, bob)
        errors = collector(remote, "error")
        for msg_id in range(1, 11):  # ten half-sent messages, 16300 bytes each
            inject(conn, pack({"__peerData": msg_id, "n": 0, "data": bytes(16300), "total": 3}))
        await until(lambda: len(errors) >= 4)
        assert all("exceed 100000 bytes" in e.message for e in errors)
        reassembler = remote._serializer._reassembler  # type: ignore[union-attr]
        assert reassembler.pending_bytes <= 100_000
        await still_echoes(conn, remote)


async def test_truncated_chunk_set_is_reported_after_timeout_and_at_close(server: Any) -> None:
    limits = ChunkLimits(timeout=0.5)
    async with peers(server, None, None, limits=limits) as (alice, bob):
        conn, remote = await open_pair(alice, bob)
        errors = collector(remote, "error")
        frames = [
            pack({"__peerData": 1, "n": n, "data": bytes(16300), "total": 3}) for n in range(2)
        ]
        for frame in frames:
            inject(conn, frame)
        await until(lambda: bool(errors), timeout=5)
        assert errors[0].type == "bad-data"
        assert "chunked message 1 timed out" in errors[0].message
        inject(conn, pack({"__peerData": 2, "n": 0, "data": b"x", "total": 2}))
        await still_echoes(conn, remote)
        closed = next_event(remote, "close")
        remote.close()
        await wait(closed)
        assert "chunked message 2 never completed" in errors[-1].message


async def test_unknown_serialization_in_offer_errors_that_connection_only(server: Any) -> None:
    async with peers(server, "bob-unknown-ser", None) as (bob, alice):
        url = (f"ws://{server.host}:{server.port}{server.path}peerjs"
               f"?key=peerjs&id=mallory-{alice.id[:8]}&token=t&version=1.5.5")  # fmt: skip
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.createDataChannel("evil")
        incoming = next_event(bob, "connection")
        errors: list[PeerError] = []
        closed = asyncio.get_running_loop().create_future()

        def watch(conn: DataConnection) -> None:  # handlers attached as the event fires
            conn.on("error", errors.append)
            conn.on("close", lambda: closed.set_result(True))

        bob.on("connection", watch)
        async with connect(url) as ws:
            assert json.loads(await ws.recv())["type"] == "OPEN"
            await pc.setLocalDescription(await pc.createOffer())
            offer = {"type": "OFFER", "dst": bob.id, "payload": {
                "sdp": {"type": "offer", "sdp": pc.localDescription.sdp}, "type": "data",
                "connectionId": "dc_evil", "serialization": "cbor-x", "reliable": True}}  # fmt: skip
            await ws.send(json.dumps(offer))
            conn: DataConnection = await wait(incoming)
            await wait(closed)
            with pytest.raises(PeerError, match="Unknown serialization"):
                await conn
            assert [e.type for e in errors] == ["bad-data"]
            assert "Unknown serialization 'cbor-x'" in errors[0].message
            for junk in ['{"type":"OFFER"}', '{"type":"OFFER","payload":{"connectionId":"x","type":"data"}}',
                         '{"type":"ANSWER","payload":{"connectionId":"dc_nope","sdp":"zzz"}}',
                         '{"type":"CANDIDATE","payload":{"connectionId":"dc_evil","candidate":{"candidate":"garbage"}}}',
                         '{"type":"OFFER","payload":{"connectionId":"dc_2","type":"data","sdp":{"type":"offer","sdp":"nonsense"}}}']:  # fmt: skip
                await ws.send(junk.replace("{", '{"dst":"' + bob.id + '",', 1))
            await asyncio.sleep(0.5)
        await pc.close()
        assert bob.open
        conn2, remote2 = await open_pair(alice, bob)
        await still_echoes(conn2, remote2)
