"""The websocket protocol against a real daphne running peerhub."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from signalling.protocol import Errors
from tests.servers import LiveServer, manage
from tests.wsclient import closed_with, join, nothing_arrives, open_socket, recv, rejoin, send

StartServer = Callable[..., AbstractContextManager[LiveServer]]


def uid(prefix: str = "p") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


async def test_relay_stamps_src_and_reemits_exact_fields(peerhub_server: LiveServer) -> None:
    a_id, b_id = uid(), uid()
    a, b = await join(peerhub_server, a_id), await join(peerhub_server, b_id)
    await a.send(json.dumps({"type": "OFFER", "src": "SPOOF", "dst": b_id, "extra": "x",
                             "payload": {"sdp": "v=0"}}))
    raw = await asyncio.wait_for(b.recv(), 5)
    assert raw == json.dumps({"type": "OFFER", "src": a_id, "dst": b_id,
                              "payload": {"sdp": "v=0"}}, separators=(",", ":"))
    await a.close()
    await b.close()


@pytest.mark.parametrize("kind", ["OFFER", "ANSWER", "CANDIDATE", "LEAVE", "EXPIRE"])
async def test_every_relayed_type_reaches_an_online_peer(peerhub_server: LiveServer,
                                                         kind: str) -> None:
    a_id, b_id = uid(), uid()
    a, b = await join(peerhub_server, a_id), await join(peerhub_server, b_id)
    await send(a, type=kind, dst=b_id, payload={"n": 1})
    assert await recv(b) == {"type": kind, "src": a_id, "dst": b_id, "payload": {"n": 1}}
    await a.close()
    await b.close()


async def test_binary_frame_holding_json_is_relayed(peerhub_server: LiveServer) -> None:
    a_id, b_id = uid(), uid()
    a, b = await join(peerhub_server, a_id), await join(peerhub_server, b_id)
    await a.send(json.dumps({"type": "CANDIDATE", "dst": b_id, "payload": 1}).encode())
    assert (await recv(b))["src"] == a_id
    await a.close()
    await b.close()


async def test_sending_to_yourself_works(peerhub_server: LiveServer) -> None:
    a_id = uid()
    a = await join(peerhub_server, a_id)
    await send(a, type="CANDIDATE", dst=a_id, payload=2)
    assert await recv(a) == {"type": "CANDIDATE", "src": a_id, "dst": a_id, "payload": 2}
    await a.close()


@pytest.mark.parametrize(("frame", "error"), [
    ("not json", Errors.NOT_JSON),
    ("[1,2,3]", Errors.NOT_OBJECT),
    ('{"payload":1}', Errors.NO_TYPE),
    ('{"type":"OFFER","dst":42,"payload":1}', Errors.BAD_DST),
])
async def test_malformed_frame_gets_precise_error_and_nothing_else_breaks(
        peerhub_server: LiveServer, frame: str, error: str) -> None:
    a_id, b_id = uid(), uid()
    a, b = await join(peerhub_server, a_id), await join(peerhub_server, b_id)
    await a.send(frame)
    assert await recv(a) == {"type": "ERROR", "payload": {"msg": error}}
    assert await nothing_arrives(b)
    await send(a, type="OFFER", dst=b_id, payload="still fine")
    assert (await recv(b))["payload"] == "still fine"
    await a.close()
    await b.close()


async def test_unknown_and_server_only_types_are_ignored(peerhub_server: LiveServer) -> None:
    a_id, b_id = uid(), uid()
    a, b = await join(peerhub_server, a_id), await join(peerhub_server, b_id)
    for kind in ("FOO", "ID-TAKEN", "OPEN", "HEARTBEAT", "ERROR"):
        await send(a, type=kind, dst=b_id, payload=1)
    await send(a, type="OFFER", payload="no dst")
    assert await nothing_arrives(b)
    assert await nothing_arrives(a, 0.05)
    await a.close()
    await b.close()


async def test_frame_over_max_message_size_is_closed_1009_others_unaffected(
        peerhub_server: LiveServer) -> None:
    a_id, b_id, c_id = uid(), uid(), uid()
    a, b, c = [await join(peerhub_server, i) for i in (a_id, b_id, c_id)]
    await a.send(json.dumps({"type": "OFFER", "dst": b_id, "payload": "x" * 70_000}))
    assert await recv(a) == {"type": "ERROR", "payload": {"msg": Errors.TOO_BIG}}
    assert await closed_with(a) == 1009
    assert await nothing_arrives(b)
    await send(c, type="OFFER", dst=b_id, payload="ok")
    assert (await recv(b))["payload"] == "ok"
    await b.close()
    await c.close()


@pytest.mark.parametrize("peer_id", ["with spaces here", "héllo w/rld?", "x" * 200, "日本"])
async def test_unusual_ids_register_and_relay(peerhub_server: LiveServer,
                                              peer_id: str) -> None:
    peer_id = f"{peer_id}{uuid.uuid4().hex[:4]}"
    a_id = uid()
    odd, a = await join(peerhub_server, peer_id), await join(peerhub_server, a_id)
    await send(a, type="OFFER", dst=peer_id, payload=1)
    assert (await recv(odd))["src"] == a_id
    await send(odd, type="ANSWER", dst=a_id, payload=2)
    assert (await recv(a))["src"] == peer_id
    await odd.close()
    await a.close()


@pytest.mark.parametrize("query", ["key=peerjs&id=A&token=", "key=peerjs&id=A",
                                   "key=peerjs&token=t", "id=A&token=t", ""])
async def test_missing_or_empty_parameter_gets_the_peerjs_error(
        peerhub_server: LiveServer, query: str) -> None:
    from websockets.asyncio.client import connect

    url = f"ws://{peerhub_server.host}:{peerhub_server.port}/peerjs?{query}"
    async with connect(url) as ws:
        assert await recv(ws) == {"type": "ERROR",
                                  "payload": {"msg": Errors.INVALID_WS_PARAMETERS}}
        assert await closed_with(ws) == 1008


@pytest.mark.parametrize("key", ["nosuchkey", "k" * 10_000, "ké y/?&"])
async def test_unknown_key_gets_invalid_key(peerhub_server: LiveServer, key: str) -> None:
    ws = await open_socket(peerhub_server, uid(), key=key)
    assert (await recv(ws))["type"] == "INVALID-KEY"
    assert await closed_with(ws) == 1008


async def test_wrong_websocket_paths_are_refused(peerhub_server: LiveServer) -> None:
    from websockets.asyncio.client import connect

    for path in ("/peerjs/", "/", "/foo"):
        url = f"ws://{peerhub_server.host}:{peerhub_server.port}{path}?key=peerjs&id=Q&token=t"
        with pytest.raises(InvalidStatus):
            await connect(url)


async def test_taken_id_with_other_token_gets_id_taken(peerhub_server: LiveServer) -> None:
    a_id = uid()
    a = await join(peerhub_server, a_id, token="one")
    intruder = await open_socket(peerhub_server, a_id, token="two")
    assert await recv(intruder) == {"type": "ID-TAKEN", "payload": {"msg": "ID is taken"}}
    assert await closed_with(intruder) == 1008
    await a.close()


async def test_same_token_takes_over_silently_and_gets_later_messages(
        peerhub_server: LiveServer) -> None:
    a_id, b_id = uid(), uid()
    old = await join(peerhub_server, a_id, token="same")
    b = await join(peerhub_server, b_id)
    new = await open_socket(peerhub_server, a_id, token="same")
    assert await nothing_arrives(new)  # no second OPEN
    await send(b, type="OFFER", dst=a_id, payload="hi")
    assert (await recv(new))["payload"] == "hi"
    assert await nothing_arrives(old, 0.1)
    for ws in (old, new, b):
        await ws.close()


async def test_id_is_freed_when_the_socket_closes(peerhub_server: LiveServer) -> None:
    a_id = uid()
    a = await join(peerhub_server, a_id, token="first")
    await a.close()
    # the close reaches the server a moment later: well before ALIVE_TIMEOUT (60 s)
    again = await rejoin(peerhub_server, a_id, token="second", timeout=20)
    await again.close()


async def test_leave_without_dst_unregisters_the_sender(peerhub_server: LiveServer) -> None:
    a_id = uid()
    a = await join(peerhub_server, a_id, token="first")
    await send(a, type="LEAVE")
    other = await rejoin(peerhub_server, a_id, token="second", timeout=20)
    await other.close()
    await a.close()


async def relayed_in_order(server: LiveServer, ws: ClientConnection, ws_id: str) -> None:
    """Return once the server has handled every frame ``ws`` sent before this call."""
    witness_id = uid()
    witness = await join(server, witness_id)
    await send(ws, type="CANDIDATE", dst=witness_id, payload="barrier")
    assert await recv(witness) == {"type": "CANDIDATE", "src": ws_id, "dst": witness_id,
                                   "payload": "barrier"}
    await witness.close()


async def test_offline_messages_are_delivered_right_after_open(
        peerhub_server: LiveServer) -> None:
    a_id, late = uid(), uid()
    a = await join(peerhub_server, a_id)
    await send(a, type="OFFER", dst=late, payload=1)
    await send(a, type="CANDIDATE", dst=late, payload=2)
    await send(a, type="LEAVE", dst=late)  # never queued
    # a's frames are handled in order: once this one is relayed, the three above are
    # queued (or dropped), so the late joiner below takes the offline-queue path
    await relayed_in_order(peerhub_server, a, a_id)
    c = await open_socket(peerhub_server, late)
    frames = [await recv(c) for _ in range(3)]
    assert frames == [{"type": "OPEN"},
                      {"type": "OFFER", "src": a_id, "dst": late, "payload": 1},
                      {"type": "CANDIDATE", "src": a_id, "dst": late, "payload": 2}]
    assert await nothing_arrives(c)
    await a.close()
    await c.close()


async def test_expire_once_per_sender_after_timeout(start_server: StartServer) -> None:
    with start_server(EXPIRE_TIMEOUT="800", CLEANUP_INTERVAL="100") as server:
        a, b = await join(server, "A"), await join(server, "B")
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for ws in (a, a, b):
            await send(ws, type="OFFER", dst="D", payload=1)
        assert await recv(a, 3) == {"type": "EXPIRE", "src": "D", "dst": "A"}
        assert 0.7 <= loop.time() - t0 <= 2.0
        assert await recv(b, 3) == {"type": "EXPIRE", "src": "D", "dst": "B"}
        assert await nothing_arrives(a, 0.5)
        late = await join(server, "D")
        assert await nothing_arrives(late)  # the queue was dropped with the EXPIRE
        for ws in (a, b, late):
            await ws.close()


async def test_full_queue_expires_the_sender_at_once_and_keeps_the_rest(
        start_server: StartServer) -> None:
    with start_server(QUEUE_LIMIT="2") as server:
        a = await join(server, "A")
        for n in range(3):
            await send(a, type="OFFER", dst="D", payload=n)
        assert await recv(a, 2) == {"type": "EXPIRE", "src": "D", "dst": "A"}
        d = await join(server, "D")
        assert [(await recv(d))["payload"] for _ in range(2)] == [0, 1]
        await a.close()
        await d.close()


async def test_concurrent_limit_gets_the_peerjs_error(start_server: StartServer) -> None:
    with start_server(CONCURRENT_LIMIT="1") as server:
        a = await join(server, "A")
        b = await open_socket(server, "B")
        assert await recv(b) == {"type": "ERROR",
                                 "payload": {"msg": Errors.CONNECTION_LIMIT_EXCEED}}
        await a.close()


async def test_flooding_socket_is_closed_1008_and_others_keep_talking(
        start_server: StartServer) -> None:
    with start_server(RATE_LIMIT="50", RATE_BURST="100") as server:
        flood, a, b = [await join(server, i) for i in ("F", "A", "B")]
        for _ in range(400):
            await send(flood, type="CANDIDATE", dst="B", payload="spam")
        frames = []
        with pytest.raises(ConnectionClosed):
            while True:
                frames.append(await recv(flood, 3))
        assert {"type": "ERROR", "payload": {"msg": Errors.RATE_LIMIT}} in frames
        assert flood.close_code == 1008
        while not await nothing_arrives(b, 0.3):
            pass  # drain the spam that was relayed before the limit hit
        await send(a, type="OFFER", dst="B", payload="honest")
        assert (await recv(b))["payload"] == "honest"
        await a.close()
        await b.close()


async def test_same_id_under_two_keys_are_two_peers(peerhub_server: LiveServer) -> None:
    other = manage(peerhub_server, "createkey", f"tenant-{uid()}")
    a1 = await join(peerhub_server, "twin", token="x")
    a2 = await join(peerhub_server, "twin", token="y", key=other)
    b1 = await join(peerhub_server, "sender", key="peerjs")
    await send(b1, type="OFFER", dst="twin", payload="for key peerjs")
    assert (await recv(a1))["payload"] == "for key peerjs"
    assert await nothing_arrives(a2)
    for ws in (a1, a2, b1):
        await ws.close()


async def test_dead_socket_is_closed_and_id_freed_within_alive_timeout(
        start_server: StartServer) -> None:
    with start_server(ALIVE_TIMEOUT="2000") as server:
        ghost = await open_socket(server, "G", token="ghost", ping_interval=None)
        assert await recv(ghost) == {"type": "OPEN"}
        ghost.transport.pause_reading()  # no pongs, no frames: a dead peer
        # ID-TAKEN until the dead socket is dropped, then OPEN (never without the timeout)
        fresh = await rejoin(server, "G", token="other", timeout=30)
        await fresh.close()
        ghost.transport.abort()


async def test_silent_peer_that_answers_pings_stays_registered(
        start_server: StartServer) -> None:
    # A 0.3.x client never sends HEARTBEAT; websocket pings keep it alive.
    with start_server(ALIVE_TIMEOUT="2000") as server:
        quiet = await join(server, "Q", token="q")
        await asyncio.sleep(5)
        intruder = await open_socket(server, "Q", token="z")
        assert (await recv(intruder))["type"] == "ID-TAKEN"
        await quiet.close()
