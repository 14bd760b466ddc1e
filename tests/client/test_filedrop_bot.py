"""The file-drop bot: request handling (pure) and the CLI process over a real server."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from peerhub_client.bots.filedrop import FileDropError, FileStore, handle_request, safe_name

from .bots import run_bot
from .helpers import next_event, peers, wait


@pytest.mark.parametrize(
    "name", ["", ".hidden", "../etc/passwd", "a/b", "x" * 200, " lead", 5, None]
)
def test_unsafe_names_are_refused(name: Any) -> None:
    with pytest.raises(FileDropError):
        safe_name(name)


def test_put_get_list_delete(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "drop")
    put = handle_request(store, {"op": "put", "name": "a.txt", "data": b"hello", "id": 7})
    assert put["ok"] and put["id"] == 7 and put["size"] == 5 and len(put["sha256"]) == 64
    assert handle_request(store, {"op": "get", "name": "a.txt"})["data"] == b"hello"
    assert handle_request(store, {"op": "list"})["files"] == [{"name": "a.txt", "size": 5}]
    assert handle_request(store, {"op": "delete", "name": "a.txt"})["ok"]
    missing = handle_request(store, {"op": "get", "name": "a.txt"})
    assert missing == {"op": "get", "ok": False, "error": "no such file: a.txt"}


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        ({"op": "put", "name": "a", "data": "not bytes"}, "'data' must be binary"),
        ({"op": "put", "name": "../x", "data": b""}, "invalid file name"),
        ({"op": "zap"}, "unknown op 'zap'"),
        ("just a string", "requests are maps"),
        ({"op": "put", "name": "big", "data": bytes(11)}, "file too large"),
    ],
)
def test_bad_requests_get_error_replies(tmp_path: Path, request_: Any, error: str) -> None:
    reply = handle_request(FileStore(tmp_path, max_bytes=10), request_)
    assert reply["ok"] is False and error in reply["error"]
    assert not [p for p in tmp_path.iterdir() if p.name != "drop"]


@pytest.mark.parametrize("serialization", ["binary", "MsgPack"])
async def test_filedrop_process_stores_and_serves_files(
    reference_server: Any, tmp_path: Path, serialization: str
) -> None:
    blob = random.Random(9).randbytes(300_000)
    bot_id = f"drop-{random.randrange(10**9)}"
    async with run_bot("filedrop", reference_server, "--id", bot_id, "--dir", str(tmp_path)) as bot:
        assert await bot.next_line() == bot_id
        async with peers(reference_server, None) as (me,):
            conn = await wait(me.connect(bot_id, serialization=serialization))

            async def ask(request: dict[str, Any]) -> Any:
                reply = next_event(conn, "data")
                conn.send(request)
                return await wait(reply, 30)

            stored = await ask({"op": "put", "name": "photo.bin", "data": blob})
            assert stored["ok"] and stored["size"] == len(blob)
            assert (tmp_path / "photo.bin").read_bytes() == blob
            assert (await ask({"op": "list"}))["files"] == [
                {"name": "photo.bin", "size": len(blob)}
            ]
            assert (await ask({"op": "get", "name": "photo.bin"}))["data"] == blob
            assert (await ask({"op": "get", "name": "../../etc/passwd"}))["ok"] is False
