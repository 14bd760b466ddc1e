"""Hostile input thrown at a live server: random frames, ids, keys, paths (hypothesis).

Throughout, an honest pair keeps exchanging messages that must arrive intact, the
process must stay up, and every id a hostile socket held must be free once it is gone.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from tests.servers import LiveServer, run_server
from tests.waiting import until
from tests.wsclient import join, recv, send

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=10)
types = st.sampled_from(["OFFER", "ANSWER", "CANDIDATE", "LEAVE", "EXPIRE", "HEARTBEAT",
                         "OPEN", "ID-TAKEN", "ERROR", "FOO", ""]) | st.text(max_size=8)
structured = st.fixed_dictionaries(
    {}, optional={"type": types | json_values, "dst": st.text(max_size=20) | json_values,
                  "src": st.text(max_size=10), "payload": json_values})
frames = st.one_of(
    structured.map(json.dumps),
    structured.map(lambda d: json.dumps(d).encode()),
    json_values.map(json.dumps),
    st.binary(max_size=200),
    st.text(max_size=200),
)
ids = st.text(max_size=40) | st.sampled_from(["", " ", "a" * 300, "x\x00y", "../../etc"])
keys = st.sampled_from(["peerjs", "", "nosuchkey", "k" * 5000, "peer js", "%00"]) | st.text(
    max_size=20)


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory,
                template_db: object) -> Iterator[LiveServer]:
    with run_server(tmp_path_factory.mktemp("fuzz"), template_db,  # type: ignore[arg-type]
                    MAX_MESSAGE_SIZE="4096") as server:
        yield server


async def honest_exchange(server: LiveServer, tag: str) -> None:
    a, b = await join(server, f"honA{tag}"), await join(server, f"honB{tag}")
    payload = {"sdp": "v=0\r\n" + tag, "n": [1, 2, 3]}
    await send(a, type="OFFER", dst=f"honB{tag}", payload=payload)
    assert await recv(b) == {"type": "OFFER", "src": f"honA{tag}", "dst": f"honB{tag}",
                             "payload": payload}
    await a.close()
    await b.close()


async def hostile(server: LiveServer, key: str, peer_id: str, token: str,
                  batch: list[str | bytes]) -> bool:
    """Run one hostile socket; tell whether it was registered (got OPEN)."""
    query = urlencode({"key": key, "id": peer_id, "token": token})
    url = f"ws://{server.host}:{server.port}/peerjs?{query}"
    opened = False
    try:
        async with connect(url, max_size=None, open_timeout=5) as ws:
            opened = json.loads(await asyncio.wait_for(ws.recv(), 5)).get("type") == "OPEN"
            for frame in batch:
                await ws.send(frame)
    except (ConnectionClosed, InvalidStatus, TimeoutError):
        pass
    return opened


async def opens(server: LiveServer, peer_id: str) -> bool:
    """True if a new socket for ``peer_id`` gets OPEN (its old holder is gone)."""
    query = urlencode({"key": "peerjs", "id": peer_id, "token": "probe"})
    async with connect(f"ws://{server.host}:{server.port}/peerjs?{query}") as ws:
        return bool(json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "OPEN")


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(key=keys, peer_id=ids, token=st.text(max_size=20), batch=st.lists(frames, max_size=15))
def test_random_frames_ids_and_keys_never_hurt_honest_peers(
        fuzz_server: LiveServer, key: str, peer_id: str, token: str,
        batch: list[str | bytes]) -> None:
    async def case() -> None:
        opened = await hostile(fuzz_server, key, peer_id, token, batch)
        await honest_exchange(fuzz_server, uuid.uuid4().hex[:8])
        if opened and key == "peerjs":
            await until(lambda: opens(fuzz_server, peer_id), what=f"id {peer_id!r} free")

    asyncio.run(case())
    assert fuzz_server.process.poll() is None


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.text(max_size=60), method=st.sampled_from(["GET", "POST", "OPTIONS", "PUT",
                                                           "DELETE", "HEAD"]),
       body=st.binary(max_size=300))
def test_random_http_requests_never_get_a_server_error(
        fuzz_server: LiveServer, path: str, method: str, body: bytes) -> None:
    url = f"http://{fuzz_server.host}:{fuzz_server.port}/{quote(path, safe='/?=&')}"
    request = urllib.request.Request(url, data=body if method in ("POST", "PUT") else None,
                                     method=method, headers={"Origin": "http://x.example"})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            status = resp.status
    except urllib.error.HTTPError as err:
        status = err.code
    assert status < 500, (method, url)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.text(max_size=30))
def test_random_websocket_paths_are_refused_cleanly(fuzz_server: LiveServer,
                                                    path: str) -> None:
    async def case() -> None:
        url = f"ws://{fuzz_server.host}:{fuzz_server.port}/{quote(path)}?key=peerjs&id=p&token=t"
        try:
            async with connect(url, open_timeout=5) as ws:
                first = json.loads(await asyncio.wait_for(ws.recv(), 5))
                assert quote(path) == "peerjs" and first["type"] in ("OPEN", "ID-TAKEN")
        except (InvalidStatus, WebSocketException):
            pass
        await honest_exchange(fuzz_server, uuid.uuid4().hex[:8])

    asyncio.run(case())


# --- the database and the log boundaries (issue 13) ----------------------------------

header_bytes = st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))


async def hostile_raw(server: LiveServer, peer_id: str, version: str, token: str,
                      user_agent: bytes, forwarded: bytes | None) -> None:
    """One upgrade with random id, version and headers, then a relayed SDP; ends closed."""
    import base64
    import os

    from tests.test_front import Raw, upgrade_request

    target = (f"/peerjs?key=peerjs&id={quote(peer_id, safe='')}&token={quote(token)}"
              f"&version={quote(version, safe='')}")
    request = upgrade_request(target, base64.b64encode(os.urandom(16)))[:-2]
    request += b"User-Agent: " + user_agent + b"\r\n"
    if forwarded is not None:
        request += b"X-Forwarded-For: " + forwarded + b"\r\n"
    raw = await Raw.connect(server)
    try:
        await raw.send(request + b"\r\n")
        status, _, _ = await raw.read_head()
        assert status in (101, 400), status
        if status == 101:
            _, _, first = await raw.read_frame()
            assert json.loads(first)["type"] in ("OPEN", "ERROR", "ID-TAKEN")
    finally:
        raw.close()


def test_random_ids_versions_and_headers_reach_postgres_and_the_log_cleanly(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    from tests.pgserver import pg_rows, pg_server

    honest: list[str] = []
    secrets: list[str] = []
    with pg_server(tmp_path_factory.mktemp("fuzzpg"), PROXY_HEADERS="true") as (server, db):

        @settings(max_examples=40, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow])
        @given(peer_id=ids, version=st.text(max_size=40), user_agent=header_bytes,
               forwarded=st.none() | header_bytes)
        def case(peer_id: str, version: str, user_agent: bytes,
                 forwarded: bytes | None) -> None:
            tag = uuid.uuid4().hex[:10]
            token = f"fuzztok{tag}"
            secrets.extend([token, f"sdp-{tag}"])
            honest.extend([f"honA{tag}", f"honB{tag}"])

            async def run() -> None:
                await hostile_raw(server, peer_id, version, token, user_agent, forwarded)
                a = await join(server, f"honA{tag}", token)
                b = await join(server, f"honB{tag}", token)
                payload = {"type": "offer", "sdp": f"v=0\r\no=- sdp-{tag} 2 IN IP4 0.0.0.0"}
                await send(a, type="OFFER", dst=f"honB{tag}", payload=payload)
                assert (await recv(b))["payload"] == payload
                await a.close()
                await b.close()

            asyncio.run(run())

        case()
        assert len(honest) >= 40, len(honest)  # hypothesis ran its examples

        def recorded() -> set[str]:
            return {row[0] for row in pg_rows(db, "SELECT peer_id FROM signalling_peersession")}

        deadline = time.monotonic() + 20
        while not set(honest) <= recorded():
            assert time.monotonic() < deadline, set(honest) - recorded()
            time.sleep(0.3)
        assert server.process.poll() is None
        server.stop()
        log = server.log()
    for bad in ("Traceback", "the database refused", "cannot write session events"):
        assert bad not in log, bad
    leaked = [s for s in secrets if s in log]
    assert not leaked, leaked[:3]
