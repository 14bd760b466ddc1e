"""A key's allowed origins, on the websocket and on the HTTP routes.

A key with allowed origins accepts only those (a browser always sends ``Origin``);
a refused websocket gets the PeerJS ERROR and close 1008, a refused HTTP request gets
401 without ``Access-Control-Allow-Origin``, so the browser hides the answer too.
"""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.typing import Origin

from signalling.protocol import Errors
from tests.servers import LiveServer, run_server
from tests.test_apikeys_helpers import make_keys
from tests.wsclient import closed_with, open_socket, recv

GOOD = "https://app.example.com"
OTHER_GOOD = "http://localhost:3000"
BAD = "https://evil.example.net"
REFUSED = {"type": "ERROR", "payload": {"msg": Errors.ORIGIN_NOT_ALLOWED}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, template_db: Path
           ) -> Iterator[LiveServer]:
    with run_server(tmp_path_factory.mktemp("origins"), template_db) as live:
        make_keys(live, {"name": "fenced", "key": "fenced", "allow_discovery": True,
                         "allowed_origins": f"{GOOD}\n{OTHER_GOOD}"})
        yield live


def get(server: LiveServer, path: str, origin: str | None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(f"{server.base_url}{path}",
                                     headers={"Origin": origin} if origin else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.mark.parametrize("origin", [GOOD, OTHER_GOOD, GOOD + "/"])
async def test_websocket_from_an_allowed_origin_opens(server: LiveServer, origin: str) -> None:
    # an id of its own: the previous case's "ok" may not have been released yet
    ws = await open_socket(server, f"ok-{uuid.uuid4().hex[:8]}", key="fenced",
                           origin=Origin(origin))
    assert await recv(ws) == {"type": "OPEN"}
    await ws.close()
    await closed_with(ws)


@pytest.mark.parametrize("origin", [BAD, "https://app.example.com.evil.net", "null",
                                    "http://app.example.com"])
async def test_websocket_from_another_origin_gets_the_error_and_1008(
        server: LiveServer, origin: str) -> None:
    ws = await open_socket(server, "no", key="fenced", origin=Origin(origin))
    assert await recv(ws) == REFUSED
    assert await closed_with(ws) == 1008


async def test_websocket_without_origin_is_refused_for_a_fenced_key(server: LiveServer) -> None:
    ws = await open_socket(server, "no", key="fenced")
    assert await recv(ws) == REFUSED
    assert await closed_with(ws) == 1008


async def test_unfenced_key_accepts_any_origin(server: LiveServer) -> None:
    ws = await open_socket(server, "any", key="peerjs", origin=Origin(BAD))
    assert await recv(ws) == {"type": "OPEN"}
    await ws.close()


@pytest.mark.parametrize("path", ["fenced/id", "fenced/peers"])
def test_http_reflects_only_an_allowed_origin(server: LiveServer, path: str) -> None:
    status, headers, _ = get(server, path, GOOD)
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == GOOD
    assert "Origin" in headers["Vary"]


@pytest.mark.parametrize("path", ["fenced/id", "fenced/peers"])
def test_http_from_a_refused_origin_is_401_without_cors(server: LiveServer, path: str) -> None:
    status, headers, body = get(server, path, BAD)
    assert (status, body) == (401, b"Unauthorized")
    assert "Access-Control-Allow-Origin" not in headers


def test_preflight_is_answered_for_any_origin(server: LiveServer) -> None:
    request = urllib.request.Request(f"{server.base_url}fenced/id", method="OPTIONS",
                                     headers={"Origin": BAD,
                                              "Access-Control-Request-Method": "GET"})
    with urllib.request.urlopen(request, timeout=5) as resp:
        assert resp.status == 204  # the GET that follows is what gets refused
