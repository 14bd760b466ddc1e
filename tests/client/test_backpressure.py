"""Backpressure: ``send()`` keeps the channel at PeerJS's 8 MiB mark and ``await drain()``
makes a 50 MB transfer run in bounded memory (real aiortc peers, both servers)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from peerhub_client import DataConnection, PeerError

from .helpers import next_event, peers, until, wait
from .readme import code_block

MiB = 1024 * 1024
MARK = 8 * MiB
SLACK = 64 * 1024  # one frame may go in while the channel is just under the mark


@pytest.fixture(params=["reference", "peerhub"])
def server(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(
        "reference_server" if request.param == "reference" else "peerhub_server"
    )


def rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


class Sink:
    """Counts and hashes what a connection receives, keeping nothing."""

    def __init__(self, conn: DataConnection) -> None:
        self.bytes = 0
        self.digest = hashlib.sha256()
        conn.on("data", self.take)

    def take(self, data: Any) -> None:
        self.bytes += len(data)
        self.digest.update(data)


async def sink_pair(alice: Any, bob: Any) -> tuple[DataConnection, Sink]:
    sinks: list[Sink] = []
    bob.on("connection", lambda conn: sinks.append(Sink(conn)))
    conn = await wait(alice.connect(bob.id, reliable=True))
    await until(lambda: bool(sinks))
    return conn, sinks[0]


async def test_readme_send_file_moves_50_mb_with_memory_near_the_mark(
    server: Any, tmp_path: Path
) -> None:
    namespace: dict[str, Any] = {}
    exec(code_block("Sending and backpressure"), namespace)  # noqa: S102 - the README's example
    path = tmp_path / "big.bin"
    expected = hashlib.sha256()
    with path.open("wb") as out:
        for _ in range(50):
            block = os.urandom(MiB)
            expected.update(block)
            out.write(block)
    async with peers(server, None, None) as (alice, bob):
        conn, sink = await sink_pair(alice, bob)
        assert conn.high_water_mark == MARK
        base, peak_rss, peak_buffered = rss(), 0, 0

        async def watch() -> None:
            nonlocal peak_rss, peak_buffered
            while True:
                peak_rss = max(peak_rss, rss())
                peak_buffered = max(peak_buffered, conn.buffered_amount)
                assert conn.data_channel is not None
                assert conn.data_channel.bufferedAmount <= MARK + SLACK
                await asyncio.sleep(0.005)

        watcher = asyncio.ensure_future(watch())
        try:
            await asyncio.wait_for(namespace["send_file"](conn, path), 120)
            await until(lambda: sink.bytes == 50 * MiB, timeout=60)
        finally:
            watcher.cancel()
        assert sink.digest.hexdigest() == expected.hexdigest()
        # queued + buffered never exceeds the mark plus the one 1 MiB message after a drain
        assert peak_buffered <= MARK + MiB + SLACK, peak_buffered
        assert peak_rss - base < 40 * MiB, (peak_rss - base) / MiB  # 50 MB queued would be more


async def test_send_without_drain_keeps_the_channel_at_the_mark(server: Any) -> None:
    async with peers(server, None, None) as (alice, bob):
        conn, sink = await sink_pair(alice, bob)
        assert conn.data_channel is not None
        for _ in range(20):
            conn.send(os.urandom(MiB))
            assert conn.data_channel.bufferedAmount <= MARK + SLACK
        assert conn.buffered_amount > 10 * MiB  # the rest waits in the connection's queue
        await wait(conn.drain(), 60)
        assert conn.buffered_amount <= MARK
        await until(lambda: sink.bytes == 20 * MiB, timeout=60)


async def test_drain_raises_when_the_connection_closes(server: Any) -> None:
    async with peers(server, None, None) as (alice, bob):
        conn, _ = await sink_pair(alice, bob)
        for _ in range(20):
            conn.send(os.urandom(MiB))
        draining = asyncio.ensure_future(conn.drain())
        closed = next_event(conn, "close")
        conn.close()
        await wait(closed)
        with pytest.raises(PeerError) as info:
            await wait(draining)
        assert info.value.type == "connection-closed"
