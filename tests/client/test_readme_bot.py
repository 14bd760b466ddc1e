"""The README's bot, run exactly as written, gets a browser's connection that was made
while the bot was offline (the server holds the OFFER and delivers it right after the
bot's OPEN), every time, on both servers."""

from __future__ import annotations

import asyncio
import random
import sys
from typing import Any

import pytest
from playwright.async_api import Browser

from tests.servers import ROOT

from .bots import tree_env
from .browser_harness import new_browser_peer, open_client_page
from .readme import TOP_README, code_block, substitute

pytestmark = pytest.mark.browser

# imports first, then waits for "go" on stdin: the bot is offline until the test says so
WRAPPER = """import sys
import asyncio, peerhub_client  # warm imports: the README's own code starts after "go"
print("loaded", flush=True)
sys.stdin.readline()
exec(compile(sys.argv[1], "README.md", "exec"), {"__name__": "__main__"})
"""


@pytest.fixture(params=["peerhub", "reference"])
def server(request: pytest.FixtureRequest) -> Any:
    name = "reference_server" if request.param == "reference" else "peerhub_server"
    return request.getfixturevalue(name)


def test_the_top_level_readme_shows_the_same_bot() -> None:
    assert code_block("A bot") == code_block("Python peers (bots)", readme=TOP_README)


def readme_bot(server: Any, bot_id: str) -> str:
    return substitute(code_block("A bot"), {
        '"echo-bot"': repr(bot_id), 'host="127.0.0.1"': f"host={server.host!r}",
        "port=9000": f"port={server.port}, path={server.path!r}",
    })  # fmt: skip


async def test_readme_bot_gets_a_connection_made_while_it_was_offline(
    browser: Browser, server: Any
) -> None:
    page = await open_client_page(browser)
    await new_browser_peer(page, server)
    for attempt in range(3):
        bot_id = f"readme-bot-{random.randrange(10**9)}"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", WRAPPER, readme_bot(server, bot_id), cwd=ROOT, env=tree_env(),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert proc.stdin is not None and proc.stdout is not None
        try:
            assert await asyncio.wait_for(proc.stdout.readline(), 60) == b"loaded\n"
            await page.evaluate(
                "(bot) => { window.conn = peer.connect(bot, {serialization: 'json'});"
                " window.opened = new Promise((resolve, reject) => {"
                "  conn.on('open', resolve); conn.on('error', reject);"
                "  setTimeout(() => reject(new Error('not open')), 20000); }); }",
                bot_id,
            )
            # the OFFER is on its way to the server once the browser has its local offer
            await page.wait_for_function("conn.peerConnection && conn.peerConnection.localDescription")
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
            echoed = await page.evaluate(
                """async () => { await opened;
                    const back = new Promise(resolve => conn.once('data', resolve));
                    conn.send({hello: 'bot'}); return await back; }"""
            )
            assert echoed == {"hello": "bot"}, f"attempt {attempt}"
            line = await asyncio.wait_for(proc.stdout.readline(), 20)
            assert line.decode().strip() == f"my id: {bot_id}"
            await page.evaluate("conn.close()")
        finally:
            if proc.returncode is None:
                proc.terminate()
                await proc.wait()
    await page.context.close()
