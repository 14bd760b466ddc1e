"""Bad tenant input: each case gets its precise PeerJS answer, is logged once, and no
other tenant notices.

One server; a pair of bystander peers under their own key keep talking between cases.
"""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.typing import Origin

from signalling.protocol import Errors
from tests.servers import LiveServer, run_server
from tests.test_apikeys_helpers import log_lines, make_keys
from tests.waiting import until
from tests.wsclient import closed_with, join, open_socket, recv, send

INVALID_KEY = {"type": "INVALID-KEY", "payload": {"msg": Errors.INVALID_KEY}}
# Refusal lines name the key (a public tenant id; for an unknown one, what was asked, at
# most 64 characters), the reason and the address (issue 14).
UNKNOWN_LOG = "reason='invalid key' address=127.0.0.1"
ORIGIN_LOG = "key='fenced' reason='origin' address=127.0.0.1"
LIMIT_LOG = "key='tiny' reason='concurrent' address=127.0.0.1"


@dataclass(frozen=True)
class Case:
    key: str
    frame: dict[str, Any]
    log: str
    origin: str | None = None


CASES = {
    "unknown key": Case("nosuchkey", INVALID_KEY, UNKNOWN_LOG),
    "deactivated key": Case("switched-off", INVALID_KEY, UNKNOWN_LOG),
    "odd characters": Case("ké y/?&%00<script>", INVALID_KEY, UNKNOWN_LOG),
    "10,000 characters": Case("k" * 10_000, INVALID_KEY, UNKNOWN_LOG),
    "wrong origin": Case("fenced", {"type": "ERROR",
                                    "payload": {"msg": Errors.ORIGIN_NOT_ALLOWED}},
                         ORIGIN_LOG, origin="https://evil.example"),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, template_db: Path
           ) -> Iterator[LiveServer]:
    with run_server(tmp_path_factory.mktemp("bad"), template_db) as live:
        make_keys(live, {"name": "calm", "key": "calm"},
                  {"name": "off", "key": "switched-off", "active": False},
                  {"name": "fenced", "key": "fenced", "allowed_origins": "https://ok.example"},
                  {"name": "tiny", "key": "tiny", "concurrent_limit": 1})
        yield live


@dataclass(frozen=True)
class Bystander:
    id: str
    ws: ClientConnection


@pytest.fixture
async def bystanders(server: LiveServer) -> AsyncIterator[tuple[Bystander, ...]]:
    # Ids of their own: the previous case's pair may not have been released yet.
    tag = uuid.uuid4().hex[:8]
    pair = tuple([Bystander(i, await join(server, i, key="calm"))
                  for i in (f"x-{tag}", f"y-{tag}")])
    yield pair
    await still_talking(*pair)
    for b in pair:
        await b.ws.close()


async def still_talking(a: Bystander, b: Bystander) -> None:
    await send(a.ws, type="CANDIDATE", dst=b.id, payload="still here")
    assert await recv(b.ws) == {"type": "CANDIDATE", "src": a.id, "dst": b.id,
                                "payload": "still here"}


async def logged(server: LiveServer, needle: str, since: int) -> list[str]:
    """The log lines after ``since`` that hold ``needle``, once there is one."""
    lines: list[str] = await until(lambda: log_lines(server, needle, since),
                                   what=f"a log line with {needle!r}")
    return lines


@pytest.mark.parametrize("name", list(CASES))
async def test_bad_key_input_gets_its_error_is_logged_once_and_harms_no_one(
        server: LiveServer, bystanders: tuple[Bystander, ...], name: str) -> None:
    case = CASES[name]
    since = len(server.log())
    ws = await open_socket(server, "intruder", key=case.key,
                           origin=Origin(case.origin) if case.origin else None)
    assert await recv(ws) == case.frame
    assert await closed_with(ws) == 1008
    await logged(server, case.log, since)
    await still_talking(*bystanders)  # and a round trip later, still one line
    lines = log_lines(server, case.log, since)
    assert len(lines) == 1, lines
    assert f"key={case.key[:64]!r}" in lines[0]  # named, escaped, at most 64 characters
    assert case.key[:65] not in server.log()[since:] or len(case.key) <= 64
    assert "Traceback" not in server.log()[since:]


async def test_over_a_keys_limit_gets_the_limit_error_is_logged_once_and_harms_no_one(
        server: LiveServer, bystanders: tuple[Bystander, ...]) -> None:
    holder = await join(server, "first", key="tiny")
    since = len(server.log())
    ws = await open_socket(server, "second", key="tiny")
    assert await recv(ws) == {"type": "ERROR",
                              "payload": {"msg": Errors.CONNECTION_LIMIT_EXCEED}}
    assert await closed_with(ws) == 1008
    await logged(server, LIMIT_LOG, since)
    await send(holder, type="CANDIDATE", dst="first", payload="own")
    assert (await recv(holder))["payload"] == "own"
    await still_talking(*bystanders)  # and a round trip later, still one line
    assert len(log_lines(server, LIMIT_LOG, since)) == 1
    assert "Traceback" not in server.log()[since:]
    await holder.close()


@pytest.mark.parametrize("key", ["nosuchkey", "switched-off", "k" * 5_000, "ké y"])
def test_bad_key_on_http_is_401(server: LiveServer, key: str) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{server.base_url}{quote(key)}/id", timeout=5)
    assert refused.value.code == 401
    assert refused.value.read() == b"Unauthorized"
