"""Several real peerhub processes sharing Redis and PostgreSQL act as one PeerServer."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.request
from collections.abc import Callable

import pytest
import redis.asyncio

from signalling.names import Names
from signalling.protocol import Errors
from tests.servers import LiveServer, free_port, manage
from tests.services import PrivateRedis
from tests.waiting import eventually, until
from tests.wsclient import closed_with, join, nothing_arrives, open_socket, recv, rejoin, send

pytestmark = pytest.mark.cluster
Cluster = Callable[..., list[LiveServer]]


async def test_peers_on_different_nodes_relay_both_ways(cluster: Cluster) -> None:
    n1, n2 = cluster(2)
    a, b = await join(n1, "A"), await join(n2, "B")
    await a.send(json.dumps({"type": "OFFER", "src": "X", "dst": "B", "payload": {"s": 1}}))
    assert await recv(b) == {"type": "OFFER", "src": "A", "dst": "B", "payload": {"s": 1}}
    await send(b, type="ANSWER", dst="A", payload={"s": 2})
    assert await recv(a) == {"type": "ANSWER", "src": "B", "dst": "A", "payload": {"s": 2}}
    await a.close()
    await b.close()


async def test_id_taken_and_takeover_across_nodes(cluster: Cluster) -> None:
    n1, n2 = cluster(2)
    a = await join(n1, "A", token="mine")
    intruder = await open_socket(n2, "A", token="other")
    assert await recv(intruder) == {"type": "ID-TAKEN", "payload": {"msg": "ID is taken"}}
    b = await join(n1, "B")
    moved = await open_socket(n2, "A", token="mine")
    assert await nothing_arrives(moved, 0.5)  # silent takeover, no second OPEN
    await send(b, type="OFFER", dst="A", payload="to the new socket")
    assert (await recv(moved))["payload"] == "to the new socket"
    assert await nothing_arrives(a, 0.2)
    for ws in (a, b, moved):
        await ws.close()


async def queued(node: LiveServer, key: str, dst: str, count: int) -> bool:
    """True once ``count`` messages for ``dst`` wait in the cluster's Redis queue."""
    client = redis.asyncio.Redis.from_url(node.env["REDIS_URL"])
    try:
        return bool(await client.llen(Names(node.env["REDIS_PREFIX"]).queue(key, dst)) == count)
    finally:
        await client.aclose()


def close_reason(node: LiveServer, peer_id: str) -> str:
    """``repr`` of node0's session row's close reason for ``peer_id`` ("None": no row)."""
    out = manage(node, "shell", "--no-imports", "-c",
                 "from signalling.models import PeerSession as S; "
                 f"print(repr(S.objects.filter(peer_id={peer_id!r}, node='node0')"
                 ".values_list('close_reason', flat=True).first()))")
    return out.splitlines()[-1]


async def test_key_limit_counts_the_whole_cluster(cluster: Cluster) -> None:
    n1, n2 = cluster(2)
    key = manage(n1, "createkey", "small", "--limit", "2")
    a, b = await join(n1, "A", key=key), await join(n2, "B", key=key)
    over_limit = {"type": "ERROR", "payload": {"msg": Errors.CONNECTION_LIMIT_EXCEED}}
    third = await open_socket(n1, "C", key=key)
    assert await recv(third) == over_limit
    await b.close()
    # B's release crosses nodes first: until then the key's limit still counts it
    again = await rejoin(n1, "C", key=key, still_held=lambda f: f == over_limit)
    for ws in (a, again):
        await ws.close()


async def test_offline_queue_reaches_a_late_joiner_on_another_node(cluster: Cluster) -> None:
    n1, n2 = cluster(2)
    a = await join(n1, "A")
    await send(a, type="OFFER", dst="LATE", payload=1)
    await send(a, type="CANDIDATE", dst="LATE", payload=2)
    await until(lambda: queued(n1, "peerjs", "LATE", 2))  # in Redis, not yet delivered
    late = await open_socket(n2, "LATE")
    assert [await recv(late) for _ in range(3)] == [
        {"type": "OPEN"},
        {"type": "OFFER", "src": "A", "dst": "LATE", "payload": 1},
        {"type": "CANDIDATE", "src": "A", "dst": "LATE", "payload": 2}]
    await a.close()
    await late.close()


async def test_expire_reaches_the_sender_from_any_node(cluster: Cluster) -> None:
    n1, n2 = cluster(2, EXPIRE_TIMEOUT="800", CLEANUP_INTERVAL="100")
    a, b = await join(n1, "A"), await join(n2, "B")
    await send(a, type="OFFER", dst="GONE", payload=1)
    await send(b, type="OFFER", dst="GONE", payload=1)
    assert await recv(a, 4) == {"type": "EXPIRE", "src": "GONE", "dst": "A"}
    assert await recv(b, 4) == {"type": "EXPIRE", "src": "GONE", "dst": "B"}
    assert await nothing_arrives(a, 0.5)
    await a.close()
    await b.close()


async def test_discovery_lists_the_whole_clusters_peers_for_that_key(cluster: Cluster) -> None:
    n1, n2 = cluster(2)
    key = manage(n1, "createkey", "disco", "--discovery")
    a, b = await join(n1, "A", key=key), await join(n2, "B", key=key)
    c = await join(n2, "C")  # another key
    for node in (n1, n2):
        with urllib.request.urlopen(f"{node.base_url}{key}/peers", timeout=5) as resp:
            assert sorted(json.loads(resp.read())) == ["A", "B"]
    for ws in (a, b, c):
        await ws.close()


async def test_a_killed_nodes_ids_free_themselves_and_others_carry_on(
        cluster: Cluster) -> None:
    n1, n2 = cluster(2, ALIVE_TIMEOUT="3000")
    victim = await join(n1, "V", token="old")
    a, b = await join(n2, "A"), await join(n2, "B")
    n1.stop(signal.SIGKILL)
    t0 = time.monotonic()

    async def v_is_free() -> None:
        ws = await open_socket(n2, "V", token="new")
        first = await recv(ws)
        await ws.close()
        assert first == {"type": "OPEN"}, first

    await eventually(v_is_free, timeout=8)
    assert time.monotonic() - t0 <= 6
    await send(a, type="OFFER", dst="B", payload="still here")
    assert (await recv(b))["payload"] == "still here"
    victim.transport.abort()
    await a.close()
    await b.close()


async def test_sigterm_closes_sockets_1001_and_frees_ids_at_once(cluster: Cluster) -> None:
    n1, n2 = cluster(2)
    a = await join(n1, "A", token="t")
    await until(lambda: close_reason(n2, "A") == "''", in_thread=True)  # its live row
    await asyncio.to_thread(n1.stop, signal.SIGTERM)
    assert await closed_with(a) == 1001
    again = await join(n2, "A", token="other")  # freed without waiting for the lease
    await again.close()
    assert close_reason(n2, "A") == "'server stopped'"


async def test_redis_restart_nodes_resume_on_their_own(cluster: Cluster, private_redis: PrivateRedis) -> None:
    n1, n2 = cluster(2, redis_url=private_redis.url, ALIVE_TIMEOUT="3000")
    a, b = await join(n1, "A"), await join(n2, "B")
    await send(a, type="OFFER", dst="B", payload="before")
    assert (await recv(b))["payload"] == "before"
    await send(b, type="OFFER", dst="LATER", payload="queued before the outage")
    await until(lambda: queued(n2, "peerjs", "LATER", 1))
    private_redis.kill()
    await send(a, type="OFFER", dst="B", payload="during")
    assert await recv(a, 8) == {"type": "EXPIRE", "src": "B", "dst": "A"}
    private_redis.start()

    seen_by_b: list[dict[str, object]] = []

    async def relays_again() -> None:
        await send(a, type="CANDIDATE", dst="B", payload="after")
        got = await recv(b, 1)
        seen_by_b.append(got)
        assert got.get("payload") == "after", got

    await eventually(relays_again, timeout=15)
    assert "redis connection restored" in n1.log() + n2.log()
    # The queue Redis lost is reported to its sender, not silently dropped.
    lost_queue = {"type": "EXPIRE", "src": "LATER", "dst": "B"}
    while lost_queue not in seen_by_b:
        seen_by_b.append(await recv(b, 10))
    intruder = await open_socket(n2, "A", token="other")  # leases were re-asserted
    assert (await recv(intruder))["type"] == "ID-TAKEN"
    await a.close()
    await b.close()


async def test_burst_across_nodes_loses_nothing(cluster: Cluster) -> None:
    n1, n2 = cluster(2)
    pairs, per_pair = 100, 30
    senders = [await join(n1, f"s{i}") for i in range(pairs)]
    receivers = [await join(n2, f"r{i}") for i in range(pairs)]

    async def blast(i: int) -> None:
        for n in range(per_pair):
            await send(senders[i], type="CANDIDATE", dst=f"r{i}", payload=n)

    async def collect(i: int) -> list[int]:
        return [(await recv(receivers[i], 20))["payload"] for _ in range(per_pair)]

    results = await asyncio.gather(*(collect(i) for i in range(pairs)),
                                   *(blast(i) for i in range(pairs)))
    for i in range(pairs):
        assert results[i] == list(range(per_pair)), f"pair {i} lost or reordered"
    for ws in senders + receivers:
        await ws.close()


async def test_deactivating_a_key_disconnects_its_peers_on_every_node(
        cluster: Cluster) -> None:
    n1, n2 = cluster(2)
    key = manage(n1, "createkey", "doomed")
    a, b = await join(n1, "A", key=key), await join(n2, "B", key=key)
    other = await join(n2, "C")  # another key: untouched
    manage(n1, "deactivatekey", key)
    for ws in (a, b):
        assert await recv(ws, 10) == {"type": "ERROR",
                                      "payload": {"msg": Errors.KEY_DEACTIVATED}}
        assert await closed_with(ws) == 1008
    assert await nothing_arrives(other, 0.5)
    refused = await open_socket(n2, "D", key=key)
    assert (await recv(refused, 10))["type"] == "INVALID-KEY"
    await other.close()


async def test_workers_share_one_port_and_act_as_one_server(cluster: Cluster) -> None:
    """WORKERS=2: two processes on one port (SO_REUSEPORT), peers spread over both."""
    (server,) = cluster(1, WORKERS="2")
    ids = [f"W{i}" for i in range(30)]
    sockets = [await join(server, peer_id) for peer_id in ids]
    for i, ws in enumerate(sockets):
        await send(ws, type="OFFER", dst=ids[(i + 1) % 30], payload=i)
    for i in range(30):
        assert (await recv(sockets[(i + 1) % 30]))["payload"] == i

    def nodes() -> list[str]:
        out = manage(server, "shell", "--no-imports", "-c",
                     "import json; from signalling.models import PeerSession as S; "
                     "print(json.dumps(sorted(set(S.objects.values_list('node', flat=True)))))")
        return list(json.loads(out.splitlines()[-1]))

    async def both_workers_recorded() -> None:
        assert await asyncio.to_thread(nodes) == ["node0/1", "node0/2"]

    await eventually(both_workers_recorded)
    await asyncio.to_thread(server.stop, signal.SIGTERM)
    for ws in sockets:
        assert await closed_with(ws) == 1001


def test_workers_refuse_to_start_without_redis(tmp_path: object) -> None:
    import subprocess
    import sys

    from tests.servers import ROOT

    done = subprocess.run([sys.executable, "-m", "peerhub.serve"], cwd=ROOT,
                          env={"PATH": "/usr/bin:/bin", "WORKERS": "2",
                               "PORT": str(free_port())},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "WORKERS > 1 needs REDIS_URL" in done.stderr
