"""The HTTP routes against a real daphne: banner, id, peers, CORS, 0.3.x transport."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest

from signalling.protocol import BANNER, ID_PATTERN, STREAM_PADDING
from tests.servers import LiveServer, manage
from tests.wsclient import join, recv, send

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
