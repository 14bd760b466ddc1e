"""``GET /metrics``: scraped from a live server under a known load, and who may scrape."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import missing
from tests.servers import LiveServer, manage
from tests.services import REDIS_URL, redis_reachable
from tests.waiting import eventually
from tests.wsclient import closed_with, join, open_socket, recv, send

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(server: LiveServer) -> Samples:
    """Every sample of ``/metrics`` by (name, sorted labels)."""
    url = f"http://{server.host}:{server.port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain; version=")
        text = resp.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_match_a_known_load(
        start_server: Callable[..., AbstractContextManager[LiveServer]]) -> None:
    with start_server() as server:
        manage(server, "createkey", "Metered", "--key", "metered", "--limit", "3",
               "--origin", "https://ok.example")
        origin = {"additional_headers": {"Origin": "https://ok.example"}}
        peers = []
        for n in range(3):  # N = 3 peers
            ws = await open_socket(server, f"m{n}", key="metered", **origin)
            assert await recv(ws) == {"type": "OPEN"}
            peers.append(ws)
        a, b, c = peers
        for _ in range(5):  # M: 5 OFFER + 4 CANDIDATE relayed, 6 HEARTBEAT
            await send(a, type="OFFER", dst="m1", payload={"sdp": "x"})
        for _ in range(4):
            await send(c, type="CANDIDATE", dst="m1", payload={"candidate": "y"})
        for _ in range(6):
            await send(b, type="HEARTBEAT")
        for _ in range(9):
            await recv(b)
        for _ in range(2):  # queued for a peer that is not connected
            await send(c, type="OFFER", dst="not-here-yet", payload={})
        # K refusals: one over the key's limit, one bad origin, two unknown keys.
        over = await open_socket(server, "m3", key="metered", **origin)
        assert (await recv(over))["type"] == "ERROR"
        bad_origin = await open_socket(server, "m4", key="metered",
                                       additional_headers={"Origin": "https://evil.example"})
        assert (await recv(bad_origin))["type"] == "ERROR"
        for n in range(2):
            unknown = await open_socket(server, f"u{n}", key="nosuchkey")
            assert (await recv(unknown))["type"] == "INVALID-KEY"
            assert await closed_with(unknown) == 1008

        def settled() -> Samples:
            # Frames of different sockets are counted as each socket's reader gets to
            # them: wait until every figure has reached its (final) value.
            s = scrape(server)
            assert value(s, "peerhub_live_peers", key="metered") == 3
            assert value(s, "peerhub_connects_total", key="metered") == 3
            assert value(s, "peerhub_messages_received_total", key="metered",
                         type="CANDIDATE") == 4
            assert value(s, "peerhub_messages_received_total", key="metered",
                         type="HEARTBEAT") == 6
            assert value(s, "peerhub_refusals_total", key="metered", reason="concurrent") == 1
            assert value(s, "peerhub_refusals_total", key="metered", reason="origin") == 1
            assert value(s, "peerhub_refusals_total", key="", reason="invalid key") == 2
            node = next(dict(labels)["node"] for (name, labels) in s
                        if name == "peerhub_open_sockets")
            assert value(s, "peerhub_open_sockets", node=node, transport="websocket") == 3
            assert value(s, "peerhub_offline_queue_messages", node=node) == 2
            assert value(s, "peerhub_messages_received_total", key="metered", type="OFFER") == 7
            assert (("peerhub_event_loop_lag_seconds", (("node", node),)) in s)
            assert value(s, "peerhub_build_info", node=node, version=_version()) == 1
            assert any(name == "process_resident_memory_bytes" for name, _ in s)
            return s

        await eventually(settled, in_thread=True)

        # Peers leave: live drops, the totals of their ended sessions are kept.
        for ws in peers:
            await ws.close()
        def left() -> Samples:
            s = scrape(server)
            assert value(s, "peerhub_live_peers", key="metered") == 0
            return s

        s = await eventually(left, in_thread=True)
        assert value(s, "peerhub_messages_received_total", key="metered", type="OFFER") == 7
        assert value(s, "peerhub_connects_total", key="metered") == 3
        # The refusal lines name the key, the reason and the address.
        log = server.log()
        assert "reason='origin' address=127.0.0.1" in log
        assert "key='metered' reason='concurrent'" in log


async def test_cluster_mode_reports_redis_round_trip(
        start_server: Callable[..., AbstractContextManager[LiveServer]]) -> None:
    if not redis_reachable():
        missing("Redis is not reachable at 127.0.0.1:6379")
    with start_server(REDIS_URL=REDIS_URL, REDIS_PREFIX=f"ops-metrics-{uuid.uuid4().hex[:8]}"
                      ) as server:
        ws = await join(server, "r1")
        s = await asyncio.to_thread(scrape, server)
        await ws.close()
    node = next(dict(labels)["node"] for (name, labels) in s if name == "peerhub_redis_up")
    assert value(s, "peerhub_redis_up", node=node) == 1
    assert 0 < value(s, "peerhub_redis_rtt_seconds", node=node) < 5
    assert value(s, "peerhub_live_peers", key="peerjs") == 1


def _version() -> str:
    import peerhub

    return peerhub.__version__


async def call_app(client: str, method: str = "GET",
                   allow: list[str] | None = None) -> tuple[int, bytes]:
    """Call the real ``/metrics`` application in-process with a client address."""
    from django.test import override_settings

    from signalling.metrics_http import MetricsEndpoint

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send_(event: dict[str, Any]) -> None:
        sent.append(event)

    scope = {"type": "http", "method": method, "path": "/metrics", "client": (client, 5000),
             "headers": []}
    with override_settings(PEERHUB_METRICS_ALLOW=allow or ["127.0.0.1/32", "::1/128"]):
        await MetricsEndpoint()(scope, receive, send_)
    return sent[0]["status"], b"".join(e.get("body", b"") for e in sent[1:])


@pytest.mark.parametrize(("client", "allow", "status"), [
    ("127.0.0.1", None, 200), ("::1", None, 200), ("10.1.2.3", None, 403),
    ("10.1.2.3", ["10.0.0.0/8"], 200), ("192.168.0.1", ["10.0.0.0/8"], 403),
    ("::ffff:10.1.2.3", ["10.0.0.0/8"], 200), ("not-an-ip", None, 403),
])
async def test_only_allowed_addresses_may_scrape(client: str, allow: list[str] | None,
                                                 status: int) -> None:
    got, body = await call_app(client, allow=allow)
    assert got == status
    assert (b"peerhub_build_info" in body) == (status == 200)


async def test_metrics_refuses_other_methods() -> None:
    assert (await call_app("127.0.0.1", "POST"))[0] == 405


def test_a_bad_allow_entry_is_named() -> None:
    from signalling.metrics_http import BadNetwork, parse_networks

    with pytest.raises(BadNetwork, match="'10.0.0.300'"):
        parse_networks(["127.0.0.1", "10.0.0.300"])
