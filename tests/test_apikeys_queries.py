"""The connect path costs one key query at most, and the relay path none.

These run the real ASGI application in-process (``channels.testing``) against a real
test database, and count every SQL statement any thread runs by wrapping Django's
cursor class, so the tenant lookup (which runs in a worker thread) is seen too; and the
session writer's row statements, which run on the driver's own cursor
(``signalling/session_rows.py``), by wrapping its row writers.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db.backends import utils as db_utils
from pytest_django.fixtures import Settings as SettingsWrapper

from apikeys.models import ApiKey
from apikeys.tenants import forget_cached
from signalling import session_rows
from signalling.keywatch import get_key_watcher, reset_key_watcher
from signalling.metrics import get_metrics
from signalling.protocol import Errors
from signalling.runtime import get_hub, reset_hub
from signalling.sessions import get_recorder

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class SqlLog:
    """Every SQL statement run while installed, with the thread that ran it."""

    statements: list[tuple[int, str]] = field(default_factory=list)

    def clear(self) -> None:
        self.statements.clear()

    def on_table(self, table: str) -> list[str]:
        return [sql for _, sql in self.statements if f'"{table}"' in sql]

    def from_thread(self, ident: int) -> list[str]:
        return [sql for t, sql in self.statements if t == ident]


@pytest.fixture
def sql_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[SqlLog]:
    log = SqlLog()
    lock = threading.Lock()
    execute, executemany = db_utils.CursorWrapper.execute, db_utils.CursorWrapper.executemany

    def note(sql: str) -> None:
        with lock:
            log.statements.append((threading.get_ident(), sql))

    def counted_execute(self: Any, sql: str, params: Any = None) -> Any:
        note(sql)
        return execute(self, sql, params)

    def counted_executemany(self: Any, sql: str, param_list: Any) -> Any:
        note(sql)
        return executemany(self, sql, param_list)

    monkeypatch.setattr(db_utils.CursorWrapper, "execute", counted_execute)
    monkeypatch.setattr(db_utils.CursorWrapper, "executemany", counted_executemany)
    for rows in (session_rows.SqliteRows, session_rows.PostgresRows):
        for name in ("insert", "finish", "touch"):
            monkeypatch.setattr(rows, name, noted_rows(getattr(rows, name), name, note))
    yield log


def noted_rows(method: Any, name: str, note: Any) -> Any:
    """A row writer's ``method`` that notes one statement on the session table."""
    def counted(self: Any, db: Any, *args: Any) -> Any:
        infos = args[1] if name == "insert" else args[0]
        if infos:  # (an empty batch runs no statement)
            note(f'{name} "{session_rows.TABLE}"')
        return method(self, db, *args)

    return counted


class Harness:
    """The real ASGI application and the websockets a test opened on it."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.sockets: list[WebsocketCommunicator] = []

    async def connect(self, peer_id: str, key: str = "tenant") -> WebsocketCommunicator:
        """Open a websocket for ``peer_id`` (its first frame is not read)."""
        query = urlencode({"key": key, "id": peer_id, "token": "t"})
        ws = WebsocketCommunicator(self.app, f"/peerjs?{query}")
        connected, _ = await ws.connect()
        assert connected
        self.sockets.append(ws)
        return ws

    async def opened(self, peer_id: str, key: str = "tenant") -> WebsocketCommunicator:
        """Open a websocket and require OPEN as its first frame."""
        ws = await self.connect(peer_id, key)
        assert await ws.receive_json_from(timeout=5) == {"type": "OPEN"}
        return ws

    async def close_all(self) -> None:
        for ws in self.sockets:
            await ws.disconnect()


@pytest.fixture
async def hub_app(settings: SettingsWrapper) -> AsyncIterator[Harness]:
    """The ASGI application with a fresh hub, no cached keys and a dormant key watcher."""
    from peerhub.asgi import application

    settings.PEERHUB_KEY_WATCH_MS = 3_600_000  # tests of the watcher call check_once()
    reset_hub()
    reset_key_watcher()
    forget_cached()
    await sync_to_async(ApiKey.objects.create)(name="tenant", key="tenant")
    harness = Harness(application)
    yield harness
    await harness.close_all()
    await settle_sessions()
    for task in asyncio.all_tasks():
        if task.get_name().startswith("peerhub-"):
            task.cancel()
    reset_key_watcher()
    reset_hub()
    forget_cached()


async def settle_sessions() -> None:
    """Wait until the session recorder has written everything it holds."""
    recorder = get_recorder()
    for _ in range(100):
        if not recorder.pending:
            break
        await asyncio.sleep(0.05)
    await sync_to_async(recorder.write, thread_sensitive=False)()


async def test_each_connect_runs_one_key_query_when_the_cache_is_off(
        hub_app: Harness, sql_log: SqlLog, settings: SettingsWrapper) -> None:
    settings.PEERHUB_KEY_CACHE_SECONDS = 0
    loop_thread = threading.get_ident()
    for n in range(3):
        sql_log.clear()
        await hub_app.opened(f"p{n}")
        assert len(sql_log.on_table("apikeys_apikey")) == 1
        assert sql_log.from_thread(loop_thread) == []  # nothing blocks the event loop


async def test_a_warm_cache_makes_connects_query_free(
        hub_app: Harness, sql_log: SqlLog, settings: SettingsWrapper) -> None:
    settings.PEERHUB_KEY_CACHE_SECONDS = 60
    await hub_app.opened("first")
    await settle_sessions()
    sql_log.clear()
    for n in range(5):
        await hub_app.opened(f"later{n}")
    assert sql_log.on_table("apikeys_apikey") == []


async def test_refusals_cost_at_most_the_key_query(
        hub_app: Harness, sql_log: SqlLog, settings: SettingsWrapper) -> None:
    settings.PEERHUB_KEY_CACHE_SECONDS = 0
    sql_log.clear()
    ws = await hub_app.connect("x", key="k" * 10_000)
    assert (await ws.receive_json_from(timeout=5))["type"] == "INVALID-KEY"
    assert sql_log.statements == []  # an over-long key never reaches the database
    ws = await hub_app.connect("x", key="nosuchkey")
    assert (await ws.receive_json_from(timeout=5))["type"] == "INVALID-KEY"
    assert len(sql_log.statements) == 1


async def test_relaying_messages_runs_no_query(hub_app: Harness, sql_log: SqlLog) -> None:
    a, b = await hub_app.opened("a"), await hub_app.opened("b")
    await settle_sessions()  # the two session rows are written off the relay path
    # The writer's own clock (a touch of live rows and peaks every TOUCH_INTERVAL) is
    # time's work, not the relay's: a slow machine stretched this window over one. Its
    # task is stopped here; what the relay would have left for it is checked after.
    await get_recorder().stop()
    sql_log.clear()
    for n in range(300):
        await a.send_json_to({"type": "CANDIDATE", "dst": "b", "payload": n})
    for n in range(300):
        assert (await b.receive_json_from(timeout=5))["payload"] == n
    await a.send_json_to({"type": "OFFER", "dst": "offline", "payload": "queued"})
    await a.send_to(text_data="not json")
    assert await a.receive_json_from(timeout=5) == {
        "type": "ERROR", "payload": {"msg": Errors.NOT_JSON}}
    assert get_recorder().pending == 0  # nothing left for the writer either
    assert not get_metrics().pending_hits
    assert sql_log.statements == []


async def test_session_rows_are_written_from_a_worker_thread(
        hub_app: Harness, sql_log: SqlLog) -> None:
    loop_thread = threading.get_ident()
    await hub_app.opened("a")
    await settle_sessions()
    assert sql_log.on_table("signalling_peersession")
    assert sql_log.from_thread(loop_thread) == []


async def test_key_watcher_checks_every_key_online_in_one_query(
        hub_app: Harness, sql_log: SqlLog) -> None:
    for n in range(30):
        await sync_to_async(ApiKey.objects.create)(name=f"k{n}", key=f"k{n}")
    for n in range(30):
        await hub_app.opened("p", key=f"k{n}")
    get_key_watcher()._last_touch = float("inf")  # leave last_used out of this count
    sql_log.clear()
    assert await get_key_watcher().check_once() == 0
    assert len(sql_log.statements) == 1


async def test_key_watcher_closes_only_the_peers_of_switched_off_keys(hub_app: Harness) -> None:
    await sync_to_async(ApiKey.objects.create)(name="other", key="other")
    gone, kept = await hub_app.opened("a"), await hub_app.opened("a", key="other")
    await sync_to_async(ApiKey.objects.filter(key="tenant").update)(active=False)
    assert await get_key_watcher().check_once() == 1
    assert await gone.receive_json_from(timeout=5) == {
        "type": "ERROR", "payload": {"msg": Errors.KEY_DEACTIVATED}}
    assert await gone.receive_output(timeout=5) == {"type": "websocket.close", "code": 1008}
    await gone.disconnect()  # the client answers the close; the id is freed
    assert get_hub().keys_online() == {"other": 1}
    await kept.send_json_to({"type": "CANDIDATE", "dst": "a", "payload": "still here"})
    assert (await kept.receive_json_from(timeout=5))["payload"] == "still here"
