"""Peer sessions are recorded in the database, off the relay path, and always closed."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable
from contextlib import AbstractContextManager

from tests.servers import LiveServer, manage
from tests.waiting import until
from tests.wsclient import closed_with, join, recv, send

StartServer = Callable[..., AbstractContextManager[LiveServer]]

DUMP = ("import json; from signalling.models import PeerSession as S; "
        "print(json.dumps([dict(peer=s.peer_id, live=s.live, reason=s.close_reason, "
        "inn=s.messages_in, out=s.messages_out, version=s.client_version) "
        "for s in S.objects.order_by('id')]))")


def sessions(server: LiveServer) -> list[dict[str, object]]:
    return list(json.loads(manage(server, "shell", "--no-imports", "-c", DUMP).splitlines()[-1]))


async def test_session_row_is_written_and_closed_with_counts(start_server: StartServer) -> None:
    with start_server() as server:
        a, b = await join(server, "A"), await join(server, "B")
        for n in range(3):
            await send(a, type="CANDIDATE", dst="B", payload=n)
        for _ in range(3):
            await recv(b)
        await a.close()
        await until(lambda: any(s["peer"] == "A" and not s["live"]
                                for s in sessions(server)), in_thread=True)
        rows = {s["peer"]: s for s in sessions(server)}
        assert rows["A"]["inn"] == 3 and rows["A"]["reason"] == "closed by client"
        assert rows["B"]["live"] is True
        await b.close()


async def test_sigterm_records_every_live_sessions_end(start_server: StartServer) -> None:
    with start_server() as server:
        a = await join(server, "A")
        # the open row is written first, so that the stop has a live row to close
        await until(lambda: [r["live"] for r in sessions(server)] == [True], in_thread=True)
        await asyncio.to_thread(server.stop, signal.SIGTERM)
        assert await closed_with(a) == 1001
        rows = sessions(server)
        assert [r["live"] for r in rows] == [False]
        assert rows[0]["reason"] == "server stopped"
        await a.close()


async def _short_sessions_are_recorded_whole(server: LiveServer) -> None:
    """Sessions that open and close between two writes are inserted complete."""
    peers = [await join(server, f"S{n}") for n in range(30)]
    for ws in peers:
        await send(ws, type="CANDIDATE", dst="nobody-here", payload=1)
    for ws in peers:
        await ws.close()
    keep = await join(server, "K")
    await until(lambda: len(sessions(server)) == 31, in_thread=True)
    rows = {s["peer"]: s for s in sessions(server)}
    for n in range(30):
        row = rows[f"S{n}"]
        assert row["live"] is False and row["reason"] == "closed by client", row
        assert row["inn"] == 1, row
    assert rows["K"]["live"] is True
    await keep.close()


async def test_short_sessions_recorded_whole_sqlite(start_server: StartServer) -> None:
    with start_server() as server:
        await _short_sessions_are_recorded_whole(server)


async def test_short_sessions_recorded_whole_postgres(tmp_path: object) -> None:
    from pathlib import Path

    from tests.conftest import missing
    from tests.servers import prepare_database, run_server, server_env
    from tests.services import fresh_postgres_database, postgres_reachable

    if not postgres_reachable():
        missing("PostgreSQL not reachable (set TEST_POSTGRES_URL)")
    var = Path(str(tmp_path))
    with fresh_postgres_database() as db_url:
        prepare_database(var, server_env(var, 0, DATABASE_URL=db_url))
        with run_server(var / "node", None, DATABASE_URL=db_url) as server:
            await _short_sessions_are_recorded_whole(server)
