"""Peer sessions are recorded in the database, off the relay path, and always closed."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from tests.servers import LiveServer, manage
from tests.wsclient import closed_with, join, recv, send

StartServer = Callable[..., AbstractContextManager[LiveServer]]

DUMP = ("import json; from signalling.models import PeerSession as S; "
        "print(json.dumps([dict(peer=s.peer_id, live=s.live, reason=s.close_reason, "
        "inn=s.messages_in, out=s.messages_out, version=s.client_version) "
        "for s in S.objects.order_by('id')]))")


def sessions(server: LiveServer) -> list[dict[str, object]]:
    return list(json.loads(manage(server, "shell", "--no-imports", "-c", DUMP).splitlines()[-1]))


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


async def test_session_row_is_written_and_closed_with_counts(start_server: StartServer) -> None:
    with start_server() as server:
        a, b = await join(server, "A"), await join(server, "B")
        for n in range(3):
            await send(a, type="CANDIDATE", dst="B", payload=n)
        for _ in range(3):
            await recv(b)
        await a.close()
        await asyncio.to_thread(wait_for, lambda: any(
            s["peer"] == "A" and not s["live"] for s in sessions(server)))
        rows = {s["peer"]: s for s in sessions(server)}
        assert rows["A"]["inn"] == 3 and rows["A"]["reason"] == "closed by client"
        assert rows["B"]["live"] is True
        await b.close()


async def test_sigterm_records_every_live_sessions_end(start_server: StartServer) -> None:
    with start_server() as server:
        a = await join(server, "A")
        await asyncio.sleep(1.0)  # let the open be written
        await asyncio.to_thread(server.stop, signal.SIGTERM)
        assert await closed_with(a) == 1001
        rows = sessions(server)
        assert [r["live"] for r in rows] == [False]
        assert rows[0]["reason"] == "server stopped"
        await a.close()
