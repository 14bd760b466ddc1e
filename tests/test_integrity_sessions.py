"""A bad record never blocks the others (issue 13, item 1): on PostgreSQL, a peer with
NUL in its id, version or User-Agent, and a row the database refuses, next to honest
peers who must all be recorded, with the limit-hit counters kept and one log line."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections import Counter
from pathlib import Path

import pytest
from django.db import OperationalError

from signalling import sessions
from signalling.protocol import UNSTORABLE, Errors, has_unstorable, is_acceptable_id, storable_text
from tests.pgserver import pg_rows, pg_server
from tests.servers import LiveServer
from tests.test_apikeys_helpers import StartServer, log_lines, query
from tests.test_front import Raw, upgrade_request, ws_target
from tests.waiting import until
from tests.wsclient import closed_with, join, open_socket, recv, send

HONEST = [f"honest{n}" for n in range(5)]


def test_the_id_rule_and_text_cleaning_are_pure_and_consistent() -> None:
    assert is_acceptable_id("alice") and is_acceptable_id("an id with spaces é")
    for bad in ("", "a\x00b", "tab\there", "del\x7f", "c1\x85", "lone\ud800"):
        assert not is_acceptable_id(bad), repr(bad)
    assert storable_text("Moz\x00illa\r\n", 100) == "Moz\ufffdilla\ufffd\ufffd"
    assert storable_text("x" * 300, 255) == "x" * 255


def test_the_ascii_shortcut_finds_exactly_what_the_pattern_finds() -> None:
    # has_unstorable answers printable ASCII without the regular expression: for every
    # character (alone, and inside ASCII text) it must agree with UNSTORABLE.
    for code in range(0x110000):
        ch = chr(code)
        for text in (ch, "id-" + ch, ch + "x"):
            assert has_unstorable(text) == (UNSTORABLE.search(text) is not None), hex(code)
        if code < 0x80 and UNSTORABLE.search(ch):
            assert storable_text(f"a{ch}b", 10) == "a\ufffdb"
    assert not has_unstorable("")


def test_the_backlog_is_bounded_with_a_counted_drop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sessions, "MAX_PENDING", 10)
    recorder = sessions.SessionRecorder("bound-test")
    infos = [sessions.SessionInfo("k", f"p{i}", "websocket") for i in range(25)]
    monkeypatch.setattr(sessions.connection, "close", lambda: None)
    recorder._keep_for_later(infos, [], Counter({("k", "x"): 2}), OperationalError("down"))
    assert recorder.pending == 10 and recorder.dropped == 15
    assert recorder._opened == infos[15:]  # the oldest went
    recorder._opened.clear()
    sessions.metrics.get_metrics().pending_hits.clear()


async def refused_at_the_edge(server: LiveServer, peer_id: str) -> None:
    """A NUL inside a header value is a malformed head: 400 from the edge (issue 11)."""
    raw = await Raw.connect(server)
    await raw.send(upgrade_request(ws_target(server, peer_id), base64.b64encode(os.urandom(16)),
                                   extra="User-Agent: Moz\x00evil\r\n"))
    assert (await raw.read_head())[0] == 400
    raw.close()


async def test_bad_records_never_block_honest_sessions_on_postgres(tmp_path: Path) -> None:
    with pg_server(tmp_path, MAX_MESSAGE_SIZE="1024") as (server, db_url):
        # A row PostgreSQL refuses although its text is clean: a constraint of the site's.
        pg_rows(db_url, "ALTER TABLE signalling_peersession ADD CONSTRAINT no_refused "
                        "CHECK (peer_id <> 'refused-by-db')")
        # NUL in the id: refused at registration, before the directory or the database.
        evil = await open_socket(server, "evil\x00id")
        assert await recv(evil) == {"type": "ERROR", "payload": {"msg": Errors.INVALID_ID}}
        assert await closed_with(evil) == 1008
        # NUL in a header value (the User-Agent): the edge answers 400, nothing reaches
        # the database. NUL in the version: registered, stored cleaned.
        await refused_at_the_edge(server, "nul-texts")
        nul = await Raw.connect(server)
        target = ws_target(server, "nul-texts") + "&version=1.5%00evil"
        await nul.send(upgrade_request(target, base64.b64encode(os.urandom(16)),
                                       extra="User-Agent: Moz evil\r\n"))
        assert (await nul.read_head())[0] == 101
        assert json.loads((await nul.read_frame())[2]) == {"type": "OPEN"}
        # The refused row and the honest ones in the same batch; a limit hit with them.
        refused, *honest = await asyncio.gather(
            join(server, "refused-by-db"), *(join(server, peer) for peer in HONEST))
        big = await join(server, "too-big")
        await send(big, type="OFFER", dst="honest0", payload="x" * 2000)
        assert await closed_with(big) == 1009

        def recorded() -> set[str]:
            return {r[0] for r in pg_rows(db_url, "SELECT peer_id FROM signalling_peersession")}

        await until(lambda: set(HONEST) | {"nul-texts", "too-big"} <= recorded(), in_thread=True)
        await until(lambda: pg_rows(
            db_url, "SELECT count FROM signalling_limithit WHERE api_key = 'peerjs' AND "
                    "\"limit\" = 'message size'") == [(1,)], in_thread=True)
        nul.close()
        for ws in (refused, *honest):
            await ws.close()
        # Peers after the refused row are recorded too (nothing is stuck).
        late = await join(server, "late-honest")
        await until(lambda: "late-honest" in recorded(), in_thread=True)
        await late.close()
        assert "refused-by-db" not in recorded()
        assert pg_rows(db_url, "SELECT user_agent, client_version FROM signalling_peersession "
                               "WHERE peer_id = 'nul-texts'") == [("Moz evil",
                                                                   "1.5\ufffdevil")]
        assert len(log_lines(server, "the database refused")) == 1
        assert "Traceback" not in server.log()
        assert not any("\x00" in line for line in server.log().splitlines())
        assert server.process.poll() is None


async def test_nul_in_version_and_user_agent_is_stored_the_same_on_sqlite(
        start_server: StartServer) -> None:
    with start_server() as server:
        await refused_at_the_edge(server, "nul-texts")
        nul = await Raw.connect(server)
        target = ws_target(server, "nul-texts") + "&version=1.5%00evil"
        await nul.send(upgrade_request(target, base64.b64encode(os.urandom(16)),
                                       extra="User-Agent: Moz evil\r\n"))
        assert (await nul.read_head())[0] == 101
        assert json.loads((await nul.read_frame())[2]) == {"type": "OPEN"}
        rows = await until(lambda: query(
            server, "SELECT user_agent, client_version FROM signalling_peersession "
                    "WHERE peer_id = 'nul-texts'"), in_thread=True)
        assert rows == [("Moz evil", "1.5\ufffdevil")]
        nul.close()
