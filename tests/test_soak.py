"""Soak: 100,000 hostile frames and 10,000 sockets opened and dropped, then the server's
memory is back near its baseline and every honest message arrived."""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.servers import LiveServer
from tests.wsclient import join, recv, send

StartServer = Callable[..., AbstractContextManager[LiveServer]]

HOSTILE_FRAMES = 100_000
SOCKETS = 10_000
GARBAGE = ["not json", "[1,2]", '{"type":5}', '{"type":"OFFER","dst":7}', '{"type":"FOO"}',
           '{"type":"OFFER","dst":"nobody"}', '{"type":"LEAVE","dst":"x"}', "\x00" * 50,
           '{"type":"CANDIDATE","dst":"hostile0","src":"SPOOF"}']


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def drain(ws: ClientConnection) -> None:
    try:
        async for _ in ws:
            pass
    except ConnectionClosed:
        pass


async def blast(server: LiveServer, n: int, frames: int) -> None:
    ws = await join(server, f"hostile{n}")
    reader = asyncio.create_task(drain(ws))
    rng = random.Random(n)
    try:
        for _ in range(frames):
            await ws.send(rng.choice(GARBAGE))
    except ConnectionClosed:
        pass
    await ws.close()
    await reader


async def churn(server: LiveServer, count: int, batch: int = 200) -> None:
    """Open ``count`` sockets in batches and drop each without a closing handshake."""
    url = server.ws_url("churn", "t")
    for start in range(0, count, batch):
        async def one(i: int) -> None:
            ws = await connect(url.replace("id=churn", f"id=churn{i}"), open_timeout=30)
            await asyncio.wait_for(ws.recv(), 30)
            ws.transport.abort()

        await asyncio.gather(*(one(i) for i in range(start, start + batch)))


async def honest_round(a: ClientConnection, b: ClientConnection, n: int) -> None:
    for i in range(n):
        await send(a, type="CANDIDATE", dst="honB", payload={"i": i})
    got: list[int] = []
    while len(got) < n:
        frame = await recv(b, 30)
        if frame.get("src") == "honA":  # hostile peers may also write to honB
            got.append(frame["payload"]["i"])
    assert got == list(range(n))


@pytest.mark.timeout(900)
async def test_soak_memory_returns_to_baseline_and_honest_messages_arrive(
        start_server: StartServer) -> None:
    with start_server(CONNECT_RATE="100000", CONNECT_BURST="100000") as server:
        pid = server.process.pid
        a, b = await join(server, "honA"), await join(server, "honB")
        await churn(server, 1000)  # warm up allocator pools before the baseline
        await honest_round(a, b, 100)
        await asyncio.sleep(2)
        baseline = rss_kib(pid)
        per_socket = 4000  # within the default burst, so no socket is rate-limited
        hostile = [blast(server, n, per_socket) for n in range(HOSTILE_FRAMES // per_socket)]
        await asyncio.gather(*hostile, honest_round(a, b, 500))
        await churn(server, SOCKETS)
        await honest_round(a, b, 500)
        await asyncio.sleep(3)  # let closing sockets be cleaned up
        after = rss_kib(pid)
        print(json.dumps({"baseline_kib": baseline, "after_kib": after,
                          "growth_kib": after - baseline}))
        assert after - baseline < 40 * 1024, (baseline, after)
        assert server.process.poll() is None
        await a.close()
        await b.close()
        assert os.path.exists(f"/proc/{pid}")
