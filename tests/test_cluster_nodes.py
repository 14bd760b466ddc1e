"""Nodes that come and go: concurrent first starts, a killed node's sessions closed by a
survivor, readiness, drain and a rolling restart, a Redis outage. Real processes, a real
PostgreSQL, the shared Redis (private prefix) or a private redis-server."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.servers import ROOT, LiveServer, free_port, server_env, wait_until_serving
from tests.services import PrivateRedis
from tests.waiting import eventually
from tests.wsclient import closed_with, join, open_socket, recv, send

pytestmark = pytest.mark.cluster
Cluster = Callable[..., list[LiveServer]]


def get(url: str) -> tuple[int, dict[str, object]]:
    """Status and JSON body of ``GET url`` (errors included)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            status, body = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    try:
        return status, json.loads(body)
    except ValueError:
        return status, {"raw": body.decode(errors="replace")}


async def session_reasons(server: LiveServer, node: str) -> list[str]:
    """The close reasons of ``node``'s session rows (read in a thread: the clients in
    this loop must keep answering the server's pings)."""
    return await asyncio.to_thread(_session_reasons, server, node)


def _session_reasons(server: LiveServer, node: str) -> list[str]:
    import psycopg

    with psycopg.connect(server.env["DATABASE_URL"], connect_timeout=5) as conn:
        rows = conn.execute("SELECT close_reason FROM signalling_peersession WHERE node = %s "
                            "ORDER BY id", [node]).fetchall()
    return [str(r[0]) for r in rows]


# --- first starts ---------------------------------------------------------------------

def test_two_nodes_started_at_once_on_a_fresh_database_both_serve(tmp_path: Path) -> None:
    from tests.conftest import missing
    from tests.services import REDIS_URL, fresh_postgres_database, postgres_reachable

    if not postgres_reachable():
        missing("PostgreSQL not reachable")
    # What `make run` does, twice at the same moment.
    script = (f"{sys.executable} manage.py migrate_locked --noinput -v 0 && "
              f"{sys.executable} manage.py ensuredefaultkey && "
              f"exec {sys.executable} -m peerhub.serve")
    with fresh_postgres_database() as db_url:
        servers = []
        try:
            for i in range(2):
                port = free_port()
                env = server_env(tmp_path / f"n{i}", port, DATABASE_URL=db_url,
                                 REDIS_URL=REDIS_URL, NODE_NAME=f"first{i}",
                                 REDIS_PREFIX=f"tfirst-{uuid.uuid4().hex[:8]}")
                (tmp_path / f"n{i}").mkdir()
                log = tmp_path / f"n{i}" / "out.log"
                with open(log, "wb") as out:
                    proc = subprocess.Popen(["sh", "-c", script], cwd=ROOT, env=env,
                                            stdout=out, stderr=subprocess.STDOUT)
                servers.append(LiveServer("127.0.0.1", port, "/", proc, log, env))
            for server in servers:
                wait_until_serving(server, timeout=120)
                status, body = get(f"{server.base_url}readyz")
                assert status == 200, body
        finally:
            for server in servers:
                server.stop()
        for server in servers:
            assert "Error" not in server.log(), server.log()


# --- health and readiness -------------------------------------------------------------

async def test_healthz_and_readyz_then_503_while_draining(cluster: Cluster) -> None:
    (n1,) = cluster(1, DRAIN_WINDOW="3")
    status, body = get(f"{n1.base_url}healthz")
    assert (status, body["status"], body["node"]) == (200, "ok", "node0")
    status, body = get(f"{n1.base_url}readyz")
    assert status == 200, body
    assert body["checks"] == {"accepting": True, "database": True, "redis": True,
                              "subscribed": True}
    peers = [await join(n1, f"d{i}") for i in range(30)]
    n1.process.send_signal(signal.SIGTERM)

    async def draining() -> None:
        status, body = await asyncio.to_thread(get, f"{n1.base_url}readyz")
        assert (status, body["status"]) == (503, "draining"), body

    await eventually(draining, 5)
    # The PeerJS HTTP routes say so too, so a proxy asks another node (not a 500).
    status, _ = await asyncio.to_thread(get, f"{n1.base_url}peerjs/id")
    assert status == 503
    refused = await open_socket(n1, "late")
    assert await recv(refused) == {"type": "ERROR",
                                   "payload": {"msg": "Server is temporarily unavailable"}}
    assert await closed_with(refused) == 1001
    t0 = time.monotonic()
    codes = await asyncio.gather(*(closed_with(ws, 10) for ws in peers))
    spread = time.monotonic() - t0
    assert codes == [1001] * 30
    assert spread >= 1.0, f"all closed within {spread:.2f}s: not spread over the window"
    await asyncio.to_thread(n1.process.wait, 15)
    assert n1.process.returncode == 0


# --- dead nodes -------------------------------------------------------------------------

async def test_a_killed_nodes_sessions_are_closed_by_a_survivor(cluster: Cluster) -> None:
    n1, n2 = cluster(2, ALIVE_TIMEOUT="3000")
    victims = [await join(n1, f"V{i}") for i in range(3)]
    survivor = await join(n2, "S")

    async def rows_written() -> None:
        assert await session_reasons(n2, "node0") == ["", "", ""]

    await eventually(rows_written)
    n1.stop(signal.SIGKILL)
    t0 = time.monotonic()

    async def closed_as_lost() -> None:
        assert await session_reasons(n2, "node0") == ["node lost"] * 3

    await eventually(closed_as_lost, 10)
    assert time.monotonic() - t0 <= 3.0 + 1.5  # ALIVE_TIMEOUT, plus a poll's slack
    assert await session_reasons(n2, "node1") == [""]  # the survivor's own peer is untouched
    assert n2.log().count("is lost; its sessions are closed") == 1
    for ws in victims:
        ws.transport.abort()
    await survivor.close()


# --- rolling restart --------------------------------------------------------------------

async def test_a_rolling_restart_under_load_refuses_no_peer_and_loses_nothing(
        cluster: Cluster) -> None:
    """Node 1 drains while its peers and node 2's exchange messages; each of node 1's
    peers reconnects to node 2 with its token; every message sent meanwhile arrives."""
    n1, n2 = cluster(2, DRAIN_WINDOW="2", EXPIRE_TIMEOUT="20000")
    count = 40
    movers = {f"m{i}": await join(n1, f"m{i}", token=f"t{i}") for i in range(count)}
    stayers = {f"s{i}": await join(n2, f"s{i}") for i in range(count)}
    received: dict[str, list[int]] = {f"m{i}": [] for i in range(count)}
    refused: list[object] = []
    rounds = 30

    async def mover(i: int) -> None:
        ws = movers[f"m{i}"]
        while True:  # read until node 1 closes us (1001)
            try:
                frame = await recv(ws, 30)
            except Exception:  # noqa: BLE001 - the close ends this socket's life
                break
            received[f"m{i}"].append(int(frame["payload"]))
        assert ws.close_code == 1001, ws.close_code
        again = await open_socket(n2, f"m{i}", token=f"t{i}")
        first = await recv(again, 20)
        if first != {"type": "OPEN"}:
            refused.append(first)
            return
        movers[f"m{i}"] = again
        while len(received[f"m{i}"]) < rounds:
            received[f"m{i}"].append(int((await recv(again, 30))["payload"]))

    async def stayer(i: int) -> None:
        for n in range(rounds):
            await send(stayers[f"s{i}"], type="CANDIDATE", dst=f"m{i}", payload=n)
            await asyncio.sleep(0.1)

    readers = [asyncio.ensure_future(mover(i)) for i in range(count)]
    writers = [asyncio.ensure_future(stayer(i)) for i in range(count)]
    await asyncio.sleep(0.5)
    stopping = asyncio.ensure_future(asyncio.to_thread(n1.stop, signal.SIGTERM))
    await asyncio.gather(*writers)
    await asyncio.wait_for(asyncio.gather(*readers), 60)
    await stopping
    assert refused == []
    for i in range(count):
        assert sorted(received[f"m{i}"]) == list(range(rounds)), (i, received[f"m{i}"])
    for ws in [*movers.values(), *stayers.values()]:
        await ws.close()


# --- Redis outage -----------------------------------------------------------------------

async def test_a_redis_outage_gives_503_and_peerjs_errors_never_500(
        cluster: Cluster, private_redis: PrivateRedis) -> None:
    (n1,) = cluster(1, redis_url=private_redis.url, ALIVE_TIMEOUT="3000")
    a = await join(n1, "A")
    assert get(f"{n1.base_url}readyz")[0] == 200
    private_redis.kill()

    def not_ready() -> None:
        status, body = get(f"{n1.base_url}readyz")
        assert status == 503 and body["checks"]["redis"] is False, (status, body)

    await eventually(not_ready)
    for route in ("peerjs/id", "peerjs/peers"):
        status, _ = await asyncio.to_thread(get, f"{n1.base_url}{route}")
        assert status != 500, route
    ws = await open_socket(n1, "B")
    assert await recv(ws, 15) == {"type": "ERROR",
                                  "payload": {"msg": "Server is temporarily unavailable"}}
    private_redis.start()

    def ready_again() -> None:
        assert get(f"{n1.base_url}readyz")[0] == 200

    await eventually(ready_again)
    b = await join(n1, "B")
    await send(a, type="OFFER", dst="B", payload="after")
    assert (await recv(b))["payload"] == "after"
    assert "Traceback" not in n1.log(), n1.log()[-3000:]
    await a.close()
    await b.close()

