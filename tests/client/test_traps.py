"""The smaller traps of the client, each fixed: send() errors, connect(""), debug=N,
the CLI's -v, the file-drop bot's reply order (real peers, both servers)."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from peerhub_client import DataConnection, PeerError

from .bots import run_bot, tree_env
from .helpers import collector, next_event, peers, wait


@pytest.fixture(params=["reference", "peerhub"])
def server(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(
        "reference_server" if request.param == "reference" else "peerhub_server"
    )


def echo(conn: DataConnection) -> None:
    conn.on("data", conn.send)


@pytest.mark.parametrize(
    ("serialization", "value", "error"),
    [
        ("binary", {1, 2}, "bad-data"),
        ("binary", object(), "bad-data"),
        ("raw", {"a": 1}, "bad-data"),
        ("raw", bytes(5 * 1024 * 1024), "message-too-big"),
        ("json", "x" * 20000, "message-too-big"),
        ("json", {"a": {1, 2}}, "bad-data"),
        ("MsgPack", {1, 2}, "bad-data"),
    ],
)
async def test_send_of_a_value_that_cannot_go_is_an_error_event_and_the_connection_lives(
    server: Any, serialization: str, value: Any, error: str
) -> None:
    async with peers(server, None, None) as (alice, bob):
        bob.on("connection", echo)
        conn = await wait(alice.connect(bob.id, serialization=serialization, reliable=True))
        errors = collector(conn, "error")
        assert conn.send(value) is None  # never raises
        assert [e.type for e in errors] == [error], errors
        assert conn.open and conn.buffered_amount == 0
        got = next_event(conn, "data")
        conn.send("still fine")
        assert await wait(got) == "still fine"


@pytest.mark.parametrize("bad_id", ["", "no/slash", " lead"])
async def test_connect_and_call_to_an_invalid_id_fail_at_once(server: Any, bad_id: str) -> None:
    from aiortc.mediastreams import AudioStreamTrack

    async with peers(server, None) as (alice,):
        errors = collector(alice, "error")
        conn = alice.connect(bad_id)
        assert conn.closed
        with pytest.raises(PeerError) as info:
            await asyncio.wait_for(conn, 1)
        assert (info.value.type, info.value.message) == ("invalid-id", f'ID "{bad_id}" is invalid')
        call = alice.call(bad_id, AudioStreamTrack())
        assert call.closed
        assert [e.type for e in errors] == ["invalid-id", "invalid-id"]
        assert alice.open and not alice.connections


DEBUG_SCRIPT = """
import asyncio, sys
from peerhub_client import Peer

async def main():
    peer = Peer(None, host={host!r}, port={port}, path={path!r}, debug=int(sys.argv[1]))
    await peer.ready()
    peer.connect("")  # an error nobody listens to: logged as a warning
    peer.destroy()
    await peer.wait_closed()

asyncio.run(main())
"""


@pytest.mark.parametrize(("debug", "levels"), [(3, {"DEBUG", "WARNING"}), (2, {"WARNING"}),
                                               (1, set()), (0, set())])  # fmt: skip
def test_debug_prints_without_any_logging_set_up(server: Any, debug: int, levels: set[str]) -> None:
    code = DEBUG_SCRIPT.format(host=server.host, port=server.port, path=server.path)
    result = subprocess.run([sys.executable, "-c", code, str(debug)], capture_output=True,
                            text=True, timeout=60, env=tree_env())  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    seen = {line.split()[1] for line in lines if line.startswith("PeerJS: ")}
    assert seen == levels, result.stderr
    if debug == 3:
        assert any("open as" in line for line in lines)
        assert not any("aioice" in line or "aiortc" in line for line in lines)


async def test_cli_verbose_shows_the_client_not_aioice(server: Any) -> None:
    bot_id = f"chatty-{random.randrange(10**9)}"
    async with run_bot("echo", server, "--id", bot_id, "-vv", stderr=subprocess.PIPE) as bot:
        assert await bot.next_line() == bot_id
        async with peers(server, None) as (me,):
            conn = await wait(me.connect(bot_id))
            got = next_event(conn, "data")
            conn.send("x")
            assert await wait(got) == "x"
        bot.process.terminate()
        assert bot.process.stderr is not None
        log = (await asyncio.wait_for(bot.process.stderr.read(), 20)).decode()
    assert "peerhub_client.bots.echo: data connection" in log
    assert "DEBUG peerhub_client" in log
    assert "aioice" not in log and "aiortc" not in log, log[:2000]


async def test_filedrop_answers_concurrent_requests_in_request_order(
    server: Any, tmp_path: Path
) -> None:
    blob = random.Random(9).randbytes(300_000)
    bot_id = f"drop-{random.randrange(10**9)}"
    async with run_bot("filedrop", server, "--id", bot_id, "--dir", str(tmp_path)) as bot:
        assert await bot.next_line() == bot_id
        async with peers(server, None) as (me,):
            conn = await wait(me.connect(bot_id, reliable=True))
            conn.send({"op": "put", "id": 1, "name": "big.bin", "data": blob})
            conn.send({"op": "list", "id": 2})
            conn.send({"op": "get", "id": 3, "name": "big.bin"})
            conn.send({"op": "delete", "id": 4, "name": "big.bin"})
            conn.send({"op": "list", "id": 5})
            replies = [await wait(conn.recv(), 30) for _ in range(5)]
    assert [r["id"] for r in replies] == [1, 2, 3, 4, 5]
    assert all(r["ok"] for r in replies), replies
    assert replies[1]["files"] == [{"name": "big.bin", "size": len(blob)}]
    assert replies[2]["data"] == blob
    assert replies[4]["files"] == []
