"""Chromium + PeerJS 1.5.5 against the Python client: the echo bot, a bot connecting to a
browser, and a browser calling the bot with its fake camera and microphone."""

from __future__ import annotations

import random
from typing import Any

import pytest
from playwright.async_api import Browser

from .bots import run_bot
from .browser_harness import new_browser_peer, open_client_page
from .helpers import peers, wait

pytestmark = pytest.mark.browser


@pytest.fixture(params=["peerhub", "reference"])
def server(request: pytest.FixtureRequest) -> Any:
    name = "reference_server" if request.param == "reference" else "peerhub_server"
    return request.getfixturevalue(name)


# JS expressions of the values the browser sends for each serialization
BROWSER_VALUES = {
    "binary": "[t.pattern(1000000, 1), {a: 1, s: 'héllo 😀', arr: [1, 2.5, null, true], n: {x: -5}},"
    " 'plain text', [t.pattern(40000, 2), 2**40]]",
    "json": "[{a: [1, 'x', null], b: 'é'}, 'text', 3.25]",
    "raw": "['a text frame', t.pattern(5000, 3).buffer]",
    "MsgPack": "[{a: 1, bin: t.pattern(100, 4)}, t.pattern(200000, 5), 'text', [1, null, 2.5]]",
}


@pytest.mark.parametrize("serialization", list(BROWSER_VALUES))
async def test_browser_peer_gets_its_messages_back_from_the_echo_bot(
    browser: Browser, server: Any, serialization: str
) -> None:
    bot_id = f"echo-{random.randrange(10**9)}"
    async with run_bot("echo", server, "--id", bot_id) as bot:
        assert await bot.next_line() == bot_id
        page = await open_client_page(browser)
        await new_browser_peer(page, server, msgpack=serialization == "MsgPack")
        results = await page.evaluate(
            f"""async ([bot, serialization]) => {{
                const conn = await t.openConn(bot, {{serialization}});
                return {{serialization: conn.serialization, results: await t.echo(conn, {BROWSER_VALUES[serialization]}, 30000)}};
            }}""",
            [bot_id, serialization],
        )
        assert results["serialization"] == serialization
        assert all(r["same"] for r in results["results"]), results
        if serialization == "binary":
            first = results["results"][0]
            assert first["size"] == 1_000_000 and first["got"] in ("ArrayBuffer", "Uint8Array")
        await page.context.close()


SENT_BY_PYTHON: dict[str, list[Any]] = {
    "binary": [
        b"\x00\x01\xfe\xff" * 25_000,
        {"text": "héllo 😀", "n": [1, -5, 2.5, None, True]},
        "s",
        b"\x01\x02\x03",
    ],
    "json": [{"text": "héllo", "n": [1, 2.5, None, False]}, "s", 7],
    "raw": ["text frame", b"\x00\xff\x10"],
    "MsgPack": [{"bin": b"\x01\x02\x03", "big": 2**40}, b"\x07" * 100_000, "s"],
}

# Browser-side checks of what arrived. The default channel is unordered, so each check
# picks values by kind, not by position. ``bin`` finds the one binary value.
CHECKS = {
    # PeerJS 1.5.5 delivers a reassembled (chunked) raw as a Uint8Array, a plain one as ArrayBuffer
    "binary": "r => { const big = r.find(x => t.view(x) && t.view(x).length === 100000),"
    " small = r.find(x => x instanceof ArrayBuffer && x.byteLength === 3),"
    " o = r.find(x => t.kind(x) === 'object');"
    " return r.length === 4 && t.view(big)[3] === 255 && t.view(big)[4] === 0"
    " && t.eq(small, new Uint8Array([1, 2, 3]))"
    " && t.eq(o, {text: 'héllo 😀', n: [1, -5, 2.5, null, true]}) && r.includes('s'); }",
    "json": "r => r.length === 3 && t.eq(r.find(x => t.kind(x) === 'object'), {text: 'héllo', n: [1, 2.5, null, false]})"
    " && r.includes('s') && r.includes(7)",
    "raw": "r => r.length === 2 && r.includes('text frame')"
    " && t.eq(r.find(x => x instanceof ArrayBuffer), new Uint8Array([0, 255, 16]))",
    "MsgPack": "r => r.length === 3 && r[0].bin instanceof Uint8Array && t.eq(r[0].bin, new Uint8Array([1, 2, 3]))"
    " && r[0].big === 2**40 && r[1].byteLength === 100000 && r[2] === 's'",
}


@pytest.mark.parametrize("serialization", list(SENT_BY_PYTHON))
async def test_python_peer_connects_to_a_browser_which_checks_the_data(
    browser: Browser, peerhub_server: Any, serialization: str
) -> None:
    page = await open_client_page(browser)
    browser_id = await new_browser_peer(page, peerhub_server, msgpack=serialization == "MsgPack")
    async with peers(peerhub_server, None) as (bot,):
        conn = await wait(
            bot.connect(browser_id, serialization=serialization, metadata={"from": "py"})
        )
        for value in SENT_BY_PYTHON[serialization]:
            conn.send(value)
        await page.wait_for_function(
            f"received.length >= {len(SENT_BY_PYTHON[serialization])}", timeout=15000
        )
        seen = await page.evaluate(
            "received.map(x => [t.kind(x), t.view(x) ? t.view(x).length : x])"
        )
        assert await page.evaluate(f"({CHECKS[serialization]})(received)"), seen
        assert await page.evaluate(
            "[incoming.serialization, incoming.metadata, incoming.peer]"
        ) == [
            serialization,
            {"from": "py"},
            bot.id,
        ]
        assert await page.evaluate("errors") == []
    await page.context.close()


async def test_browser_calls_the_echo_bot_and_receives_live_video_back(
    browser: Browser, server: Any
) -> None:
    bot_id = f"mirror-{random.randrange(10**9)}"
    async with run_bot("echo", server, "--id", bot_id) as bot:
        assert await bot.next_line() == bot_id
        page = await open_client_page(browser)
        await new_browser_peer(page, server)
        result = await page.evaluate(
            """async (bot) => {
                const local = await navigator.mediaDevices.getUserMedia({video: true, audio: true});
                const call = peer.call(bot, local);
                const remote = await new Promise((resolve, reject) => {
                    setTimeout(() => reject(new Error('no stream event')), 15000);
                    call.on('stream', resolve);
                    call.on('error', reject);
                });
                const video = document.getElementById('v');
                video.srcObject = remote;
                let frames = 0;
                await new Promise((resolve, reject) => {
                    setTimeout(() => reject(new Error('only ' + frames + ' frames')), 15000);
                    const tick = () => { frames++; if (frames >= 30) resolve(); else video.requestVideoFrameCallback(tick); };
                    video.requestVideoFrameCallback(tick);
                });
                let decoded = 0, audioPackets = 0;
                (await call.peerConnection.getStats()).forEach(s => {
                    if (s.type === 'inbound-rtp' && s.kind === 'video') decoded = s.framesDecoded;
                    if (s.type === 'inbound-rtp' && s.kind === 'audio') audioPackets = s.packetsReceived;
                });
                return {kinds: remote.getTracks().map(x => x.kind).sort(), frames, decoded, audioPackets,
                        width: video.videoWidth, height: video.videoHeight, open: call.open};
            }""",
            bot_id,
        )
        assert result["kinds"] == ["audio", "video"]
        assert result["frames"] >= 30 and result["decoded"] >= 30
        assert result["audioPackets"] > 0
        assert result["width"] > 0 and result["height"] > 0 and result["open"]
        await page.context.close()
