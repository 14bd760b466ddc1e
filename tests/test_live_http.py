"""The HTTP routes against a real daphne: banner, id, peers, CORS, 0.3.x transport."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection

from signalling.protocol import BANNER, ID_PATTERN, STREAM_PADDING, Errors
from tests.httpstream import HttpStream, open_stream, request_bytes
from tests.servers import LiveServer, manage
from tests.services import PrivateRedis
from tests.waiting import until
from tests.wsclient import join, nothing_arrives, open_socket, recv, send

StartServer = Callable[..., AbstractContextManager[LiveServer]]
ORIGIN = "http://app.example"


def http(server: LiveServer, path: str, method: str = "GET", body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request; returns status, headers (lower-cased names) and body."""
    url = f"http://{server.host}:{server.port}{path}"
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def test_banner_is_peerjs_servers_json(peerhub_server: LiveServer) -> None:
    status, headers, body = http(peerhub_server, "/")
    assert status == 200
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert json.loads(body) == BANNER
    assert b" " not in body.replace(b"PeerJS Server", b"").split(b'"description"')[0]


def test_id_route_returns_a_fresh_valid_id_as_plain_text(peerhub_server: LiveServer) -> None:
    ids = set()
    for _ in range(5):
        status, headers, body = http(peerhub_server, "/peerjs/id?ts=123&version=1.5.5")
        assert status == 200
        assert headers["content-type"] == "text/html; charset=utf-8"
        assert not body.endswith(b"\n")
        assert ID_PATTERN.match(body.decode())
        ids.add(body)
    assert len(ids) == 5


def test_id_route_refuses_an_unknown_key(peerhub_server: LiveServer) -> None:
    assert http(peerhub_server, "/nosuchkey/id")[0] == 401


def test_peers_is_401_without_discovery(peerhub_server: LiveServer) -> None:
    status, _, body = http(peerhub_server, "/peerjs/peers")
    assert (status, body) == (401, b"Unauthorized")


async def test_peers_lists_only_that_keys_peers_when_discovery_is_on(
        peerhub_server: LiveServer) -> None:
    key = manage(peerhub_server, "createkey", "disco", "--discovery")
    a = await join(peerhub_server, "listed", key=key)
    b = await join(peerhub_server, "elsewhere", key="peerjs")
    status, headers, body = http(peerhub_server, f"/{key}/peers")
    assert status == 200 and headers["content-type"].startswith("application/json")
    assert json.loads(body) == ["listed"]
    await a.close()
    await b.close()


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/"), ("GET", "/peerjs/id"), ("GET", "/peerjs/peers"), ("GET", "/no/such/route"),
    ("POST", "/peerjs/ghost/tok/offer"),
])
def test_every_response_reflects_the_origin(peerhub_server: LiveServer, method: str,
                                            path: str) -> None:
    _, headers, _ = http(peerhub_server, path, method, b"{}" if method == "POST" else None,
                         {"Origin": ORIGIN})
    assert headers["access-control-allow-origin"] == ORIGIN
    assert "Origin" in headers["vary"]


def test_no_origin_no_allow_origin_header(peerhub_server: LiveServer) -> None:
    _, headers, _ = http(peerhub_server, "/peerjs/id")
    assert "access-control-allow-origin" not in headers


def test_preflight_is_answered_204(peerhub_server: LiveServer) -> None:
    status, headers, body = http(peerhub_server, "/peerjs/x/y/offer", "OPTIONS", None, {
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert status == 204 and body == b""
    assert headers["access-control-allow-origin"] == ORIGIN
    assert headers["access-control-allow-headers"] == "content-type"
    assert "POST" in headers["access-control-allow-methods"]


async def test_classic_post_route_relays_with_the_url_id_as_src(
        peerhub_server: LiveServer) -> None:
    a_id, b_id = f"a{uuid.uuid4().hex[:8]}", f"b{uuid.uuid4().hex[:8]}"
    a = await join(peerhub_server, a_id, token="secret")
    b = await join(peerhub_server, b_id)
    body = json.dumps({"type": "OFFER", "dst": b_id, "payload": {"sdp": 1}}).encode()
    status, _, text = await asyncio.to_thread(
        http, peerhub_server, f"/peerjs/{a_id}/secret/offer", "POST", body,
        {"Content-Type": "application/json"})
    assert (status, text) == (200, b"OK")
    assert await recv(b) == {"type": "OFFER", "src": a_id, "dst": b_id, "payload": {"sdp": 1}}
    status, _, text = await asyncio.to_thread(
        http, peerhub_server, f"/peerjs/{a_id}/wrong/offer", "POST", body)
    assert (status, text) == (401, b"Invalid token provided")
    status, _, _ = await asyncio.to_thread(
        http, peerhub_server, "/peerjs/nobody/secret/candidate", "POST", body)
    assert status == 401
    await a.close()
    await b.close()


async def test_classic_xhr_stream_registers_and_streams_frames(
        peerhub_server: LiveServer) -> None:
    import http.client

    peer_id = f"s{uuid.uuid4().hex[:8]}"
    conn = http.client.HTTPConnection(peerhub_server.host, peerhub_server.port, timeout=5)
    await asyncio.to_thread(conn.request, "POST", f"/peerjs/{peer_id}/tk/id?i=0", b"",
                            {"Origin": ORIGIN})
    resp = await asyncio.to_thread(conn.getresponse)
    assert resp.status == 200
    assert resp.getheader("Access-Control-Allow-Origin") == ORIGIN
    padding = await asyncio.to_thread(resp.read, len(STREAM_PADDING))
    assert padding.decode() == STREAM_PADDING
    assert await asyncio.to_thread(resp.readline) == b'{"type":"OPEN"}\n'
    sender = await join(peerhub_server, f"x{peer_id}")
    await send(sender, type="OFFER", dst=peer_id, payload=7)
    line = await asyncio.to_thread(resp.readline)
    assert json.loads(line) == {"type": "OFFER", "src": f"x{peer_id}", "dst": peer_id,
                                "payload": 7}
    # The websocket with the same token then takes over silently.
    ws = await join_silently(peerhub_server, peer_id, "tk")
    await send(sender, type="CANDIDATE", dst=peer_id, payload=8)
    assert (await recv(ws))["payload"] == 8
    conn.close()
    await ws.close()
    await sender.close()


async def join_silently(server: LiveServer, peer_id: str, token: str):  # type: ignore[no-untyped-def]
    from tests.wsclient import nothing_arrives, open_socket

    ws = await open_socket(server, peer_id, token)
    assert await nothing_arrives(ws, 0.3)
    return ws


async def test_mount_path_moves_every_route(start_server: StartServer) -> None:
    with start_server(PEERHUB_PATH="/myapp") as server:
        assert http(server, "/myapp")[0] == 200
        assert http(server, "/myapp/")[0] == 200
        assert http(server, "/myapp/peerjs/id")[0] == 200
        assert http(server, "/peerjs/id")[0] == 404
        ws = await join(server, "M")
        await ws.close()


# --- exact answers and errors, CORS on every one ----------------------------------------

def test_head_is_served_wherever_get_is(peerhub_server: LiveServer) -> None:
    status, headers, body = http(peerhub_server, "/peerjs/id", "HEAD", None, {"Origin": ORIGIN})
    assert (status, body) == (200, b"")
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["access-control-allow-origin"] == ORIGIN


@pytest.mark.parametrize(("method", "path", "status", "text"), [
    ("POST", "/peerjs/id", 405, b"Method Not Allowed"),
    ("DELETE", "/", 405, b"Method Not Allowed"),
    ("GET", "/peerjs/A/tok/offer", 405, b"Method Not Allowed"),
    ("GET", "/peerjs/A/tok/id", 405, b"Method Not Allowed"),
    ("GET", "/no/such/route", 404, b"Not Found"),
    ("GET", "/nosuchkey/id", 401, b"Unauthorized"),
    ("GET", "/nosuchkey/ice?id=A", 401, b"Unauthorized"),
    ("POST", "/nosuchkey/A/tok/offer", 401, b"Invalid key provided"),
    ("POST", "/nosuchkey/A/tok/id", 401, b"Invalid key provided"),
    ("POST", "/peerjs/nobody/tok/candidate", 401, b"Invalid token provided"),
    ("POST", "/peerjs/a%01b/tok/id", 400, b"Invalid id provided"),
    ("GET", "/peerjs/ice?id=a%01b", 400, b"Invalid id provided"),
])
def test_errors_are_precise_and_carry_cors(peerhub_server: LiveServer, method: str,
                                           path: str, status: int, text: bytes) -> None:
    body = b"{}" if method == "POST" else None
    got, headers, answer = http(peerhub_server, path, method, body, {"Origin": ORIGIN})
    assert (got, answer) == (status, text)
    assert headers["access-control-allow-origin"] == ORIGIN
    assert "Origin" in headers["vary"]
    if status == 405:
        assert headers["allow"] in ("GET, HEAD", "POST")


async def test_post_with_a_malformed_message_is_400_with_the_reason(
        peerhub_server: LiveServer) -> None:
    peer_id = f"m{uuid.uuid4().hex[:8]}"
    ws = await join(peerhub_server, peer_id, token="secret")
    status, _, text = await asyncio.to_thread(
        http, peerhub_server, f"/peerjs/{peer_id}/secret/offer", "POST", b"not json")
    assert (status, text) == (400, b"Invalid message: not JSON")
    await ws.close()


# --- request bodies -----------------------------------------------------------------------

async def test_bodies_past_max_message_size_are_413_and_an_honest_pair_keeps_relaying(
        start_server: StartServer) -> None:
    with start_server(MAX_MESSAGE_SIZE="2048") as server:
        a = await join(server, "A", token="secret")
        b = await join(server, "B")
        big = json.dumps({"type": "OFFER", "dst": "B", "payload": "x" * 3000}).encode()
        for path in ("/peerjs/A/secret/offer", "/peerjs/S/tok/id"):
            status, headers, text = await asyncio.to_thread(
                http, server, path, "POST", big, {"Origin": ORIGIN})
            assert (status, text) == (413, b"Message too big"), path
            assert headers["access-control-allow-origin"] == ORIGIN
        # A body with no declared length is counted as it arrives.
        reader, writer = await asyncio.open_connection(server.host, server.port)
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (big[:1500], big[1500:]))
        writer.write(b"POST /peerjs/A/secret/offer HTTP/1.1\r\nHost: x\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 413 "), head
        writer.close()
        await send(a, type="OFFER", dst="B", payload="small")
        assert await recv(b) == {"type": "OFFER", "src": "A", "dst": "B", "payload": "small"}
        assert await nothing_arrives(b)  # none of the refused bodies was relayed
        await a.close()
        await b.close()


# --- the 0.3.x stream's limits ------------------------------------------------------------

async def test_stream_for_an_id_held_by_another_token_gets_id_taken_in_band(
        peerhub_server: LiveServer) -> None:
    peer_id = f"h{uuid.uuid4().hex[:8]}"
    ws = await join(peerhub_server, peer_id, token="mine")
    stream = await open_stream(peerhub_server, peer_id, "other", headers={"Origin": ORIGIN})
    assert stream.status == 200 and stream.headers["access-control-allow-origin"] == ORIGIN
    assert await stream.line() == STREAM_PADDING.encode()
    assert json.loads(await stream.line()) == {"type": "ID-TAKEN",
                                               "payload": {"msg": "ID is taken"}}
    assert await stream.rest() == b""
    stream.close()
    same = await open_stream(peerhub_server, peer_id, "mine")
    assert same.status == 204  # its websocket holds the id: nothing to add
    same.close()
    await ws.close()


async def test_streams_count_against_the_per_address_limit(start_server: StartServer) -> None:
    with start_server(MAX_SOCKETS_PER_IP="3") as server:
        streams = [await open_stream(server, f"s{i}", "tok") for i in range(3)]
        for stream in streams:
            assert stream.status == 200
            assert await stream.line() == STREAM_PADDING.encode()
            assert await stream.line() == b'{"type":"OPEN"}\n'
        fourth = await open_stream(server, "s3", "tok")
        assert fourth.status == 200 and await fourth.line() == STREAM_PADDING.encode()
        assert json.loads(await fourth.line()) == {
            "type": "ERROR", "payload": {"msg": Errors.IP_SOCKETS}}
        assert await fourth.rest() == b""
        fourth.close()
        ws = await open_socket(server, "w", "tok")  # one limit for both transports
        assert await recv(ws) == {"type": "ERROR", "payload": {"msg": Errors.IP_SOCKETS}}
        await ws.close()
        streams[0].close()  # its place (and its id) are given back

        async def opens_again() -> bool:
            again = await open_stream(server, "s0", "tok2")
            await again.line()
            opened = await again.line() == b'{"type":"OPEN"}\n'
            if not opened:
                again.close()
            else:
                streams.append(again)
            return opened

        await until(opens_again)
        for stream in streams[1:]:
            stream.close()


async def stream_answer(stream: HttpStream) -> dict[str, object]:
    """The first frame after a stream's padding."""
    assert stream.status == 200 and await stream.line() == STREAM_PADDING.encode()
    return dict(json.loads(await stream.line()))


async def test_a_stream_past_the_concurrent_limit_is_refused_in_band(
        start_server: StartServer) -> None:
    with start_server(CONCURRENT_LIMIT="2") as server:
        first = await open_stream(server, "s0", "tok")
        ws = await join(server, "w0")  # websockets and streams count alike
        third = await open_stream(server, "s1", "tok")
        assert await stream_answer(third) == {
            "type": "ERROR", "payload": {"msg": Errors.CONNECTION_LIMIT_EXCEED}}
        assert await third.rest() == b""
        for stream in (first, third):
            stream.close()
        await ws.close()


async def test_new_streams_count_against_the_connect_rate(start_server: StartServer) -> None:
    with start_server(CONNECT_RATE="1", CONNECT_BURST="2") as server:
        started = time.monotonic()
        streams = [await open_stream(server, f"s{i}", "tok") for i in range(6)]
        elapsed = time.monotonic() - started
        answers = [await stream_answer(stream) for stream in streams]
        opened = answers.count({"type": "OPEN"})
        assert answers[:2] == [{"type": "OPEN"}] * 2
        assert opened <= 2 + int(elapsed) + 1, (answers, elapsed)
        assert {"type": "ERROR", "payload": {"msg": Errors.IP_RATE}} in answers
        for stream in streams:
            stream.close()


async def test_posted_messages_count_against_the_per_peer_rate(
        start_server: StartServer) -> None:
    with start_server(RATE_LIMIT="1", RATE_BURST="5") as server:
        a = await join(server, "A", token="secret")
        b = await join(server, "B")
        body = json.dumps({"type": "CANDIDATE", "dst": "B", "payload": 1}).encode()
        started = time.monotonic()
        answers = [await asyncio.to_thread(http, server, "/peerjs/A/secret/candidate",
                                           "POST", body, {"Origin": ORIGIN})
                   for _ in range(20)]
        elapsed = time.monotonic() - started
        statuses = [status for status, _, _ in answers]
        ok = statuses.count(200)
        assert statuses[:5] == [200] * 5
        assert ok <= 5 + int(elapsed) + 1, (statuses, elapsed)
        refused = [(s, t) for s, h, t in answers if s != 200]
        assert refused and set(refused) == {(429, b"Rate limit exceeded")}
        assert all(h["access-control-allow-origin"] == ORIGIN for _, h, _ in answers)
        for _ in range(ok):
            assert (await recv(b))["type"] == "CANDIDATE"
        assert await nothing_arrives(b)
        await a.close()
        await b.close()


def memory(pid: int, field: str = "VmRSS") -> int:
    """A process's resident set size (``VmHWM``: its peak so far), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field}")


def open_deaf_stream(server: LiveServer, peer_id: str) -> socket.socket:
    """A 0.3.x stream whose client reads up to its OPEN, then nothing more."""
    sock = socket.create_connection((server.host, server.port), timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(request_bytes(server, "POST", f"/peerjs/{peer_id}/tok/id?i=0"))
    seen = b""
    while b'{"type":"OPEN"}\n' not in seen:
        data = sock.recv(4096)
        assert data, seen
        seen += data
    return sock


async def test_a_stream_that_does_not_read_is_ended_and_memory_stays_bounded(
        start_server: StartServer) -> None:
    """Two websocket peers feed 60 KB OFFERs (90 MB in all, paced within their rate) to
    a 0.3.x stream whose client stopped reading: once SEND_BUFFER_LIMIT bytes wait the
    stream is ended and its id freed, the server's peak memory stays far below what was
    sent, and the senders keep relaying."""
    with start_server(SEND_BUFFER_LIMIT="262144", QUEUE_LIMIT="5") as server:
        sock = await asyncio.to_thread(open_deaf_stream, server, "deaf")
        senders = [await join(server, f"w{i}") for i in range(2)]
        before = memory(server.process.pid)
        payload = "x" * 60_000
        for n in range(1500):
            await send(senders[n % 2], type="OFFER", dst="deaf", payload=payload)
            if n % 2:
                await asyncio.sleep(0.004)  # no burst fills the buffer in one go

        async def id_is_free() -> bool:
            ws = await open_socket(server, "deaf", "another")
            first = await recv(ws)
            await ws.close()
            return bool(first == {"type": "OPEN"})

        await until(id_is_free)
        grown = memory(server.process.pid, "VmHWM") - before
        assert grown < 40 * 1024 * 1024, f"peak grew {grown / 1e6:.0f} MB for 90 MB sent"
        assert "not read" in server.log()
        await send(senders[0], type="CANDIDATE", dst="w1", payload="still here")
        while (frame := await recv(senders[1]))["type"] == "EXPIRE":
            pass
        assert frame == {"type": "CANDIDATE", "src": "w0", "dst": "w1", "payload": "still here"}
        sock.close()
        for ws in senders:
            await ws.close()


# --- the cluster ----------------------------------------------------------------------------

Cluster = Callable[..., list[LiveServer]]


@pytest.mark.cluster
async def test_a_websocket_and_a_stream_claiming_one_id_at_once_are_never_both_open(
        cluster: Cluster) -> None:
    """On two nodes at the same moment, a websocket (one token) and a 0.3.x stream
    (another token) claim one id: in every round exactly one is told OPEN and the
    other ID-TAKEN."""
    n1, n2 = cluster(2)

    async def by_websocket(peer_id: str) -> tuple[str, ClientConnection]:
        ws = await open_socket(n1, peer_id, "ws-token")
        return (await recv(ws))["type"], ws

    async def by_stream(peer_id: str) -> tuple[str, HttpStream]:
        stream = await open_stream(n2, peer_id, "xhr-token")
        assert stream.status == 200 and await stream.line() == STREAM_PADDING.encode()
        return json.loads(await stream.line())["type"], stream

    outcomes = Counter()
    for i in range(200):
        peer_id = f"race{i}-{uuid.uuid4().hex[:6]}"
        (ws_said, ws), (stream_said, stream) = await asyncio.gather(
            by_websocket(peer_id), by_stream(peer_id))
        assert sorted([ws_said, stream_said]) == ["ID-TAKEN", "OPEN"], (i, ws_said,
                                                                       stream_said)
        outcomes["websocket" if ws_said == "OPEN" else "stream"] += 1
        stream.close()
        await ws.close()
    assert sum(outcomes.values()) == 200


@pytest.mark.cluster
async def test_routes_that_need_the_cluster_answer_503_while_redis_is_unreachable(
        cluster: Cluster, private_redis: PrivateRedis) -> None:
    (node,) = cluster(1, redis_url=private_redis.url, ALLOW_DISCOVERY="true")
    a = await join(node, "A", token="secret")
    assert (await asyncio.to_thread(http, node, "/peerjs/peers"))[2] == b'["A"]'
    private_redis.kill()
    for method, path in [("GET", "/peerjs/peers"), ("POST", "/peerjs/ghost/tok/offer"),
                         ("POST", "/peerjs/S/tok/id")]:
        body = b'{"type":"OFFER","dst":"A"}' if method == "POST" else None
        status, headers, text = await asyncio.to_thread(
            http, node, path, method, body, {"Origin": ORIGIN})
        assert (status, text) == (503, b"Server is temporarily unavailable"), path
        assert headers["access-control-allow-origin"] == ORIGIN
    # The process lives on, and what needs no cluster is still answered.
    assert (await asyncio.to_thread(http, node, "/"))[0] == 200
    assert (await asyncio.to_thread(http, node, "/peerjs/id"))[0] == 200
    assert node.process.poll() is None
    await a.close()
