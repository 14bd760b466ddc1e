"""The session writer's rows, rollups, refused rows, outages and recovery on SQLite and
PostgreSQL (``tests/writer_cases.py`` in a process of its own on each database), and its
pure parts: the SQLite time format and the batch's rollup additions."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from signalling import session_rows
from signalling.models import PeerSession
from signalling.rollup import Delta
from signalling.sessions import SessionInfo, batch_deltas
from tests.servers import ROOT, prepare_database, server_env

Run = Callable[[str], dict[str, Any]]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def run_case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
             template_db: Path) -> Iterator[Run]:
    """Run one case of ``tests/writer_cases.py`` on a migrated database of the kind."""
    var = tmp_path_factory.mktemp(f"writer-{request.param}")
    with _database(request.param, var, template_db) as env:
        def run(case: str) -> dict[str, Any]:
            done = subprocess.run([sys.executable, "-m", "tests.writer_cases", case],
                                  cwd=ROOT, env=env, capture_output=True, text=True,
                                  timeout=300, check=False)
            assert done.returncode == 0, done.stderr[-3000:]
            out: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
            assert out["vendor"] == request.param
            return out

        yield run


class _database:
    """The environment of a fresh database: a copy of the template, or PostgreSQL."""

    def __init__(self, kind: str, var: Path, template: Path) -> None:
        self.kind, self.var, self.template = kind, var, template
        self._pg: Any = None

    def __enter__(self) -> dict[str, str]:
        if self.kind == "sqlite":
            shutil.copy(self.template, self.var / "peerhub.sqlite3")
            return server_env(self.var, 0)
        from tests.conftest import missing
        from tests.services import fresh_postgres_database, postgres_reachable

        if not postgres_reachable():
            missing("PostgreSQL not reachable (set TEST_POSTGRES_URL)")
        self._pg = fresh_postgres_database()
        env = server_env(self.var, 0, DATABASE_URL=self._pg.__enter__())
        prepare_database(self.var, env)
        return env

    def __exit__(self, *exc: object) -> None:
        if self._pg is not None:
            self._pg.__exit__(None, None, None)


def when(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def test_rows_carry_every_column_as_the_sessions_had_them(run_case: Run) -> None:
    out = run_case("rows")
    a0 = out["opened"]["a"]
    assert {k: a0[k] for k in ("api_key", "peer_id", "node", "transport", "remote_addr",
                               "user_agent", "client_version", "close_reason",
                               "messages_in", "messages_out", "heartbeats")} == {
        "api_key": "k1", "peer_id": "a", "node": "rows-node", "transport": "websocket",
        "remote_addr": "10.0.0.1", "user_agent": "Mozilla/5.0 test",
        "client_version": "1.5.4", "close_reason": "", "messages_in": 0,
        "messages_out": 0, "heartbeats": 0}
    started, ended = (when(t) for t in out["times"]["a"])
    assert when(a0["connected_at"]) == started and when(a0["last_seen"]) == started
    assert a0["disconnected_at"] is None and out["opened"]["b"]["api_key"] == "k2"
    c0 = out["opened"]["c"]  # a time without microseconds, read back the same
    assert when(c0["connected_at"]) == when(out["times"]["c"]) == when(c0["last_seen"])
    a = out["a"]  # ended in the second batch: one UPDATE
    assert (a["messages_in"], a["messages_out"], a["heartbeats"]) == (7, 5, 2)
    assert a["close_reason"] == "closed by the client"
    assert when(a["disconnected_at"]) == ended == when(a["last_seen"])
    d = out["d"]  # opened and ended in one batch: one complete INSERT, reason cut
    assert when(d["connected_at"]) == when(out["times"]["d"])
    assert d["disconnected_at"] is not None and d["last_seen"] == d["disconnected_at"]
    assert (d["messages_in"], d["heartbeats"], d["close_reason"]) == (3, 1, "x" * 100)
    b = out["b"]  # live, refreshed by the touch
    assert (b["messages_in"], b["messages_out"], b["heartbeats"]) == (11, 13, 4)
    assert b["disconnected_at"] is None and when(b["last_seen"]) > when(b["connected_at"])
    assert all(isinstance(i, int) for i in out["row_ids"]) and len(set(out["row_ids"])) == 4
    assert out["rolled"] == [True, False, False, True]
    assert out["pending"] == 0 and out["dropped"] == 0
    hour = when(out["times"]["d"]).replace(minute=0, second=0, microsecond=0)
    # connections of every row, messages of the ended ones, the peaks of live peers
    assert [[when(h), *rest] for h, *rest in out["usage"]] == [
        [datetime(2026, 1, 2, 3, tzinfo=UTC), "k1", 1, 0, 0, 0, 0],
        [hour, "k1", 2, 10, 5, 3, 2], [hour, "k2", 1, 0, 0, 0, 1]]


def test_rows_the_database_refuses_are_dropped_alone(run_case: Run) -> None:
    out = run_case("refused")
    assert out["stored"] == [f"honest{n}" for n in range(4)]
    bad = 4 if out["vendor"] == "postgresql" else 2  # + a DataError and a bad text
    assert out["dropped"] == bad and out["ids"] == [None] * bad
    assert out["hits"] == [["k1", "message size", 2]]
    # the rollups count what was stored: 4 connections, honest1's 9 messages; the peak
    # is of live peers, refused rows included
    assert [rest for _, *rest in out["usage"]] == [["k1", 4, 9, 0, 0, 4 + bad]]
    assert out["after"] == out["usage"] and out["pending"] == 0
    assert len(out["refused_lines"]) == 1
    assert f"refused {bad} of this batch's rows" in out["refused_lines"][0]


def test_a_connection_lost_mid_batch_keeps_the_batch_and_writes_it_once(
        run_case: Run) -> None:
    out = run_case("outage")
    assert out["kept"] == {"pending": 4, "outage": 1, "ids": [None] * 3, "rows": 0}
    assert out["pending"] == 0 and out["outage"] == 0
    assert out["rows"] == [["o0", "closed"], ["o1", ""], ["o2", ""]]
    assert [rest[:2] for _, *rest in out["usage"]] == [["k1", 3]]
    assert [line.split(" (")[0] for line in out["lines"]] == [
        "cannot write session events", "session writes work again after 1 failed attempts"]


def test_rows_a_crash_left_open_are_closed_and_rolled_up_once(run_case: Run) -> None:
    out = run_case("recovery")
    assert out["row"]["close_reason"] == "node restarted"
    assert out["row"]["disconnected_at"] is not None
    assert [rest[1:5] for _, *rest in out["usage"]] == [[0, 4, 6, 1]]


# --- pure parts ---------------------------------------------------------------------

@pytest.mark.django_db
def test_sqlite_times_are_what_djangos_adapter_stores() -> None:
    if connection.vendor != "sqlite":
        pytest.skip("the SQLite formatter")
    fmt = session_rows.sqlite_time_formatter(connection)
    adapt = connection.ops.adapt_datetimefield_value
    for moment in (datetime(2026, 12, 1, 19, 5, 7, 123456, tzinfo=UTC),
                   datetime(2026, 12, 1, 19, 5, 7, tzinfo=UTC),
                   datetime(2026, 12, 1, 21, 5, 7, 5, tzinfo=timezone(timedelta(hours=2))),
                   datetime(2026, 12, 1, 19, 5, 7, 9)):
        assert fmt(moment) == adapt(moment), moment


def test_the_session_table_is_the_models() -> None:
    assert session_rows.TABLE == PeerSession._meta.db_table
    assert set(session_rows.INSERT_COLUMNS) == {
        f.column for f in PeerSession._meta.concrete_fields} - {"id"}


def test_a_batch_adds_connections_ended_messages_and_peaks_per_hour_and_key() -> None:
    nine = datetime(2026, 12, 1, 9, 59, 59, 999999, tzinfo=UTC)
    ten = nine + timedelta(microseconds=1)
    a, b, c = (SessionInfo("k" * 70, "a", "websocket", connected_at=nine),
               SessionInfo("k2", "b", "websocket", connected_at=ten),
               SessionInfo("k2", "c", "websocket", connected_at=ten))
    b.messages_in, b.messages_out, b.heartbeats = 3, 4, 1
    deltas = batch_deltas("n" * 120, [a, b, c], [b, c], {"k2": 5}, ten + timedelta(hours=1))
    hour9, hour10 = nine.replace(minute=0, second=0, microsecond=0), ten
    node = "n" * 100
    assert deltas == {(hour9, "k" * 64, node): Delta(connections=1),
                      (hour10, "k2", node): Delta(connections=2, messages_in=3,
                                                  messages_out=4, heartbeats=1),
                      (hour10 + timedelta(hours=1), "k2", node): Delta(peak_live=5)}


@pytest.mark.django_db
def test_session_rows_keep_only_the_indexes_queries_read() -> None:
    # (migration 0004: no api_key index of its own, no LIKE twins on PostgreSQL)
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, session_rows.TABLE)
    assert sorted(tuple(i["columns"]) for i in found.values()
                  if i["index"] and not i["primary_key"] and i["columns"]) == [
        ("api_key", "connected_at"), ("connected_at",), ("disconnected_at",), ("node",),
        ("peer_id",)]


def test_session_texts_are_cleaned_and_cut_whatever_their_kind() -> None:
    plain = SessionInfo("k", "p", "websocket", "10.0.0.1", "Mozilla/5.0", "1.5.4")
    assert (plain.remote_addr, plain.user_agent, plain.client_version) == (
        "10.0.0.1", "Mozilla/5.0", "1.5.4")
    long = SessionInfo("k", "p", "websocket", "a" * 70, "u" * 300, "v" * 40)
    assert (long.remote_addr, long.user_agent, long.client_version) == (
        "a" * 64, "u" * 255, "v" * 32)
    odd = SessionInfo("k", "p", "websocket", "", "Moz\x00illa é", "1.5\x00evil")
    assert (odd.user_agent, odd.client_version) == ("Moz\ufffdilla é", "1.5\ufffdevil")
    assert plain.connected_at.tzinfo is UTC
