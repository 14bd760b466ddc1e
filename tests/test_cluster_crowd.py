"""A flash crowd on a two-node cluster: 1,000 peers at once, then all of them reloading.

Real processes, the shared Redis (a private prefix) and a fresh PostgreSQL database via
the ``cluster`` fixture; raw websocket clients keep 1,000 peers cheap.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.servers import LiveServer
from tests.wsclient import recv, send

pytestmark = pytest.mark.cluster
Cluster = Callable[..., list[LiveServer]]

CROWD = 1000


async def first_frame(server: LiveServer, peer_id: str, token: str
                      ) -> tuple[ClientConnection | None, str]:
    """Open a socket; return it (if OPEN came) and the first frame's type."""
    try:
        ws = await connect(server.ws_url(peer_id, token), max_size=None, open_timeout=60,
                           ping_interval=None)
    except (OSError, TimeoutError) as exc:
        return None, f"connect failed: {exc!r}"
    try:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 60))
    except Exception as exc:  # noqa: BLE001 - counted as a failure below
        await ws.close()
        return None, f"no frame: {exc!r}"
    if frame.get("type") != "OPEN":
        await ws.close()
        return None, f"{frame.get('type')}: {frame.get('payload')}"
    return ws, "OPEN"


async def crowd(nodes: list[LiveServer], token: str, shift: int
                ) -> tuple[list[ClientConnection], Counter[str]]:
    """Connect every peer at once, peer i to node (i + shift) % 2."""
    results = await asyncio.gather(*(
        first_frame(nodes[(i + shift) % len(nodes)], f"p{i}", token) for i in range(CROWD)))
    outcomes = Counter(kind for _, kind in results)
    return [ws for ws, _ in results if ws is not None], outcomes


async def test_a_thousand_peers_at_once_then_a_reload_on_the_other_node(
        cluster: Cluster) -> None:
    nodes = cluster(2)
    sockets, outcomes = await crowd(nodes, "first", 0)
    assert outcomes == Counter({"OPEN": CROWD}), outcomes

    # The reload: every page drops its socket and opens a new one, with a new token,
    # on the other node. As a reloading browser does, the new socket comes after the
    # old one is gone (closing waits for the server's close frame).
    await asyncio.gather(*(ws.close() for ws in sockets))
    sockets, outcomes = await crowd(nodes, "second", 1)
    assert outcomes == Counter({"OPEN": CROWD}), outcomes

    # Everyone now on node (i + 1) % 2 sends to its neighbour, which is on the other
    # node: every message crosses.
    async def collect(i: int) -> object:
        return (await recv(sockets[i], 60))["payload"]

    async def blast(i: int) -> None:
        await send(sockets[i], type="CANDIDATE", dst=f"p{(i + 1) % CROWD}", payload=i)

    got = await asyncio.gather(*(collect(i) for i in range(CROWD)),
                               *(blast(i) for i in range(CROWD)))
    assert got[:CROWD] == [(i - 1) % CROWD for i in range(CROWD)]
    await asyncio.gather(*(ws.close() for ws in sockets))
