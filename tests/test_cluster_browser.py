"""Real Chromium peers (PeerJS 1.5.5) on different cluster nodes, and behind nginx."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.async_api import Browser

from tests.browser_page import (
    connect,
    create_peer,
    incoming,
    open_page,
    received_bytes,
    send,
    send_bytes,
    wait_event,
    wait_events,
)
from tests.nginx import nginx_binary, running_nginx
from tests.servers import LiveServer, manage
from tests.waiting import until
from tests.wsclient import join, recv
from tests.wsclient import send as ws_send

pytestmark = [pytest.mark.cluster, pytest.mark.browser]
Cluster = Callable[..., list[LiveServer]]


async def exchange(browser: Browser, server_a: LiveServer, server_b: LiveServer) -> None:
    """Peer A (via ``server_a``) opens a binary connection to B (via ``server_b``)."""
    a, b = await open_page(browser), await open_page(browser)
    await create_peer(a, server_a, "node-a-peer")
    await create_peer(b, server_b, "node-b-peer")
    await wait_event(a, "peer", "open")
    await wait_event(b, "peer", "open")
    conn = await connect(a, "peer", "node-b-peer", serialization="binary")
    await wait_event(a, conn, "open", timeout=20_000)
    back = incoming("node-a-peer")
    await wait_event(b, back, "open")
    blob = os.urandom(64 * 1024)
    await send_bytes(a, conn, blob)
    await send(b, back, {"hello": "across nodes"})
    [got] = await wait_events(b, back, "data")
    assert received_bytes(got) == blob
    assert await wait_events(a, conn, "data") == [
        {"kind": "object", "value": {"hello": "across nodes"}}]


def recorded_nodes(server: LiveServer) -> str:
    """The sorted node names found in ``server``'s session rows, as printed by Python."""
    out = manage(server, "shell", "--no-imports", "-c",
                 "from signalling.models import PeerSession as S; "
                 "print(sorted(set(S.objects.values_list('node', flat=True))))")
    return out.splitlines()[-1] if out else ""


async def test_browser_peers_on_two_nodes_talk_over_webrtc(browser: Browser,
                                                           cluster: Cluster) -> None:
    n1, n2 = cluster(2)
    await exchange(browser, n1, n2)


async def test_browser_peers_behind_nginx_talk_and_sockets_spread(
        browser: Browser, cluster: Cluster, tmp_path: Path) -> None:
    if nginx_binary() is None:
        from tests.conftest import missing

        missing("nginx is not installed (apt-get install nginx-light)")
    n1, n2 = cluster(2, PROXY_HEADERS="true")
    with running_nginx(tmp_path / "nginx", [n1.port, n2.port]) as port:
        front = dataclasses.replace(n1, port=port)
        await exchange(browser, front, front)
        sockets = [await join(front, f"spread{i}") for i in range(6)]
        await ws_send(sockets[0], type="OFFER", dst="spread5", payload="via nginx")
        assert (await recv(sockets[5]))["payload"] == "via nginx"
        # Session rows are written in batches off the relay path: wait for them.
        await until(lambda: recorded_nodes(n1) == "['node0', 'node1']", timeout=20, in_thread=True)
        for ws in sockets:
            await ws.close()
