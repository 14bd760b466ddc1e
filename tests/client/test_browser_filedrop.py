"""The README's browser file-drop example (``putFile``), run as written in Chromium with
PeerJS 1.5.5, with a plain ``Peer`` (binary) and a ``MsgPackPeer``, against the
file-drop bot on both servers; and the trap it avoids (a bare ArrayBuffer in MsgPack)."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser

from .bots import run_bot
from .browser_harness import new_browser_peer, open_client_page
from .readme import CLIENT_README

pytestmark = pytest.mark.browser


@pytest.fixture(params=["peerhub", "reference"])
def server(request: pytest.FixtureRequest) -> Any:
    name = "reference_server" if request.param == "reference" else "peerhub_server"
    return request.getfixturevalue(name)


@pytest.mark.parametrize("msgpack", [False, True], ids=["binary", "MsgPack"])
async def test_readme_put_file_stores_the_file(
    browser: Browser, server: Any, tmp_path: Path, msgpack: bool
) -> None:
    put_file = _readme_put_file()
    bot_id = f"drop-{random.randrange(10**9)}"
    async with run_bot("filedrop", server, "--id", bot_id, "--dir", str(tmp_path)) as bot:
        assert await bot.next_line() == bot_id
        page = await open_client_page(browser)
        await new_browser_peer(page, server, msgpack=msgpack)
        await page.add_script_tag(content=put_file)
        reply = await page.evaluate(
            """async (bot) => {
                const bytes = t.pattern(200000, 7);
                const file = new Blob([bytes]);   // what an <input type=file> gives
                return await putFile(peer, bot, 'photo.jpg', file);
            }""",
            bot_id,
        )
        expected = await page.evaluate("Array.from(t.pattern(200000, 7))")
        data = bytes(expected)
        assert reply == {"op": "put", "id": 1, "ok": True, "name": "photo.jpg",
                         "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}  # fmt: skip
        assert (tmp_path / "photo.jpg").read_bytes() == data
        if msgpack:  # the trap the README warns about: a bare ArrayBuffer travels as {}
            bare = await page.evaluate(
                """async (bot) => {
                    const conn = peer.connect(bot, {reliable: true});
                    await new Promise(resolve => conn.on('open', resolve));
                    const reply = new Promise(resolve => conn.once('data', resolve));
                    conn.send({op: 'put', name: 'bare.bin', data: t.pattern(10, 1).buffer});
                    return await reply;
                }""",
                bot_id,
            )
            assert bare["ok"] is False and "'data' must be binary" in bare["error"]
        await page.context.close()


def _readme_put_file() -> str:
    text = CLIENT_README.read_text()
    start = text.index("```js\nasync function putFile")
    return text[start + len("```js\n") : text.index("```", start + 5)]
