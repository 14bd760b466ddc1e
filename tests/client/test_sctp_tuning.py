"""SCTP tuning: small messages share packets, arrive complete and in order at an aiortc
peer and at Chromium (PeerJS 1.5.5); large ones still go one full chunk per packet;
SACKs go for every second packet, and a lone packet is still acknowledged."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Browser

from peerhub_client.sctptuning import MAX_BUNDLE_BYTES, ChunkBundle

from .browser_harness import new_browser_peer, open_client_page
from .helpers import next_event, peers, until, wait


@pytest.fixture(params=["reference", "peerhub"])
def server(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(
        "reference_server" if request.param == "reference" else "peerhub_server"
    )


def count_packets(conn: Any) -> list[int]:
    """Wrap the DTLS transport's send to count the SCTP packets (and their sizes)."""
    dtls = conn.data_channel.transport.transport
    sizes: list[int] = []
    original = dtls._send_data

    async def counting(data: bytes) -> None:
        sizes.append(len(data))
        await original(data)

    dtls._send_data = counting
    return sizes


async def test_small_messages_share_packets_and_arrive_in_order(server: Any) -> None:
    async with peers(server, None, None) as (alice, bob):
        incoming = next_event(bob, "connection")
        conn = await wait(alice.connect(bob.id, reliable=True))
        remote = await wait(incoming)
        await wait(remote)
        got: list[Any] = []
        remote.on("data", got.append)
        packets = count_packets(conn)
        for i in range(2000):
            conn.send(i)
        blob = bytes(range(256)) * 400  # 100 KiB: full-size chunks, never bundled beyond one
        conn.send(blob)
        await until(lambda: len(got) == 2001, timeout=60)
        assert got == [*range(2000), blob]
        assert len(packets) < 2000 / 5, len(packets)  # one packet each without bundling
        assert max(packets) <= MAX_BUNDLE_BYTES + 12 + 64  # SCTP common header + DTLS record


def count_sacks(conn: Any) -> list[int]:
    sctp = conn.data_channel.transport
    sent: list[int] = []
    original = sctp._send_sack.__self__._send_now  # the transport's own method

    async def counting() -> None:
        sent.append(1)
        await original()

    sctp._send_sack.__self__._send_now = counting
    return sent


async def test_sacks_go_for_every_second_packet_and_a_lone_one_is_acknowledged(
    server: Any,
) -> None:
    async with peers(server, None, None) as (alice, bob):
        incoming = next_event(bob, "connection")
        conn = await wait(alice.connect(bob.id, reliable=True))
        remote = await wait(incoming)
        await wait(remote)
        got: list[Any] = []
        remote.on("data", got.append)
        packets, sacks = count_packets(conn), count_sacks(remote)
        conn.send(bytes(2_000_000))
        await until(lambda: len(got) == 1, timeout=60)
        await until(lambda: not conn.data_channel.transport._sent_queue)
        assert len(sacks) < len(packets) * 0.7, (len(sacks), len(packets))
        before = len(sacks)
        conn.send("lone")
        await until(lambda: len(got) == 2)
        # nothing else comes: the delayed SACK still goes, the sender's queue empties
        await until(lambda: not conn.data_channel.transport._sent_queue)
        assert len(sacks) == before + 1


def test_a_bundle_is_its_chunks_back_to_back() -> None:
    from aiortc.rtcsctptransport import DataChunk, parse_packet, serialize_packet

    chunks = []
    for n in (1, 2, 3, 5):
        chunk = DataChunk()
        chunk.tsn, chunk.stream_id, chunk.protocol = n, 1, 53
        chunk.user_data = b"x" * n  # odd lengths: each chunk padded to 4 bytes
        chunks.append(chunk)
    packet = serialize_packet(5000, 5000, 7, ChunkBundle(chunks))  # type: ignore[arg-type]
    _, _, tag, parsed = parse_packet(packet)
    assert tag == 7 and [(c.tsn, c.user_data) for c in parsed] == [(c.tsn, c.user_data) for c in chunks]


@pytest.mark.browser
async def test_chromium_receives_bundled_small_messages_in_order(
    browser: Browser, peerhub_server: Any
) -> None:
    page = await open_client_page(browser)
    browser_id = await new_browser_peer(page, peerhub_server)
    async with peers(peerhub_server, None) as (bot,):
        conn = await wait(bot.connect(browser_id, reliable=True, serialization="binary"))
        for i in range(3000):
            conn.send({"n": i})
        await page.wait_for_function("received.length >= 3000", timeout=30000)
        ok = await page.evaluate("received.every((x, i) => x.n === i) && received.length")
        assert ok == 3000
        assert await page.evaluate("errors") == []
    await page.context.close()
