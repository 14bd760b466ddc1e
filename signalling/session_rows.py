"""The session writer's SQL: a batch of rows inserted, ended or refreshed, per backend.

The writer spends its time per row, so each backend gets the statement that costs it
least in Python (the writer's Python holds the GIL, which the event loop needs):

- **PostgreSQL**: the batch is one JSON document (``orjson``, C code, datetimes
  included) read by one statement (``json_to_recordset``): no Python per row. A
  multi-row ``VALUES`` list was ~2,400 bytecodes per row, nearly all of it psycopg
  splitting a 7,000-placeholder query in Python (it caches only short queries).
- **SQLite**: one multi-row ``INSERT ... RETURNING`` per chunk and one ``executemany``
  per update, with datetimes formatted here exactly as Django's SQLite backend stores
  them (``str`` of the naive UTC time) instead of through its adapter.
- **Any other database**: the portable statements through Django's cursor.

PostgreSQL and SQLite run on the driver's own cursor (``connection.connection``):
Django's cursor wrapper costs a few frames per statement and its SQLite cursor rewrites
every ``%s`` with a regular expression. Errors are still Django's: each call runs inside
``wrap_database_errors``, so the writer's ``except DataError`` / ``IntegrityError`` /
``DatabaseError`` clauses see what they saw through the wrapper.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from contextlib import closing
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from django.db import DataError

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper

    from signalling.sessions import SessionInfo

BATCH = 500  # rows per INSERT statement (SQLite and the portable path)
INSERT_COLUMNS = ("api_key", "peer_id", "node", "transport", "remote_addr", "user_agent",
                  "client_version", "connected_at", "last_seen", "disconnected_at",
                  "close_reason", "messages_in", "messages_out", "heartbeats")
TABLE = "signalling_peersession"  # PeerSession._meta.db_table (checked by the tests)


class SessionRows(Protocol):
    """How one backend writes a batch of session rows (inside the writer's transaction)."""

    def insert(self, db: BaseDatabaseWrapper, node: str, infos: Sequence[SessionInfo]
               ) -> None:
        """Insert rows for ``infos`` (ended ones complete) and set their ``row_id``."""

    def finish(self, db: BaseDatabaseWrapper, infos: Sequence[SessionInfo]) -> None:
        """Record the end and final counters of rows already written."""

    def touch(self, db: BaseDatabaseWrapper, infos: Sequence[SessionInfo], now: datetime
              ) -> None:
        """Refresh ``last_seen`` and the counters of live rows (those with a row id)."""


def rows_for(vendor: str) -> SessionRows:
    """The row writer for a database ``vendor`` (``connection.vendor``)."""
    if vendor == "postgresql":
        return PostgresRows()
    if vendor == "sqlite":
        return SqliteRows()
    return DjangoRows()


def as_json(infos: Sequence[SessionInfo]) -> str:
    """``infos`` as one JSON array of objects (every field; datetimes in ISO 8601).

    Text the encoder refuses (a lone surrogate) is a row the database cannot store:
    ``DataError``, so that the writer's fallback drops that row alone."""
    try:
        return orjson.dumps(infos).decode()
    except orjson.JSONEncodeError as exc:
        raise DataError(f"session not storable as JSON: {exc}") from exc


# --- PostgreSQL ---------------------------------------------------------------------

_PG_TEXT = {"api_key": 64, "peer_id": 255, "transport": 16, "remote_addr": 64,
            "user_agent": 255, "client_version": 32, "close_reason": 100}
#: the fields of a SessionInfo the statements read, typed (json_to_recordset)
_PG_FIELDS = ("api_key text, peer_id text, transport text, remote_addr text, "
              "user_agent text, client_version text, connected_at timestamptz, "
              "disconnected_at timestamptz, close_reason text, messages_in bigint, "
              "messages_out bigint, heartbeats bigint, row_id bigint")


def _pg_value(column: str) -> str:
    """SQL for ``column``'s value from the batch's record ``b``."""
    if column == "node":
        return "%s"
    if column == "last_seen":  # the end if there is one, else the start
        return "COALESCE(b.disconnected_at, b.connected_at)"
    if column in _PG_TEXT:
        return f"LEFT(b.{column}, {_PG_TEXT[column]})"
    return f"b.{column}"


# json_to_recordset reads each object once (PostgreSQL's CPU per row: 40 us, against 80
# for a multi-row VALUES list and 105 for json_array_elements with ->> per column).
# Rows come back in the order they were inserted, which is the array's (ORDER BY n):
# what Django's own bulk_create relies on for its UNNEST insert on PostgreSQL.
_PG_BATCH = (f"ROWS FROM (json_to_recordset(%s::json) AS ({_PG_FIELDS})) WITH ORDINALITY "
             f"AS b({', '.join(f.split()[0] for f in _PG_FIELDS.split(', '))}, n)")
PG_INSERT = (f"INSERT INTO {TABLE} ({', '.join(INSERT_COLUMNS)}) SELECT "
             f"{', '.join(_pg_value(c) for c in INSERT_COLUMNS)} FROM {_PG_BATCH} "
             "ORDER BY b.n RETURNING id")
PG_FINISH = (f"UPDATE {TABLE} SET disconnected_at = b.disconnected_at, "
             "last_seen = b.disconnected_at, close_reason = b.close_reason, "
             "messages_in = b.messages_in, messages_out = b.messages_out, "
             f"heartbeats = b.heartbeats FROM {_PG_BATCH} WHERE {TABLE}.id = b.row_id")
PG_TOUCH = (f"UPDATE {TABLE} SET last_seen = %s, messages_in = b.messages_in, "
            "messages_out = b.messages_out, heartbeats = b.heartbeats "
            f"FROM {_PG_BATCH} WHERE {TABLE}.id = b.row_id")


class PostgresRows:
    """One statement per batch, the rows as one JSON parameter."""

    def insert(self, db: BaseDatabaseWrapper, node: str, infos: Sequence[SessionInfo]
               ) -> None:
        if not infos:
            return
        with db.wrap_database_errors, db.connection.cursor() as cursor:
            cursor.execute(PG_INSERT, (node[:100], as_json(infos)))
            for info, (row_id,) in zip(infos, cursor.fetchall(), strict=True):
                info.row_id = row_id

    def finish(self, db: BaseDatabaseWrapper, infos: Sequence[SessionInfo]) -> None:
        if infos:
            with db.wrap_database_errors, db.connection.cursor() as cursor:
                cursor.execute(PG_FINISH, (as_json(infos),))

    def touch(self, db: BaseDatabaseWrapper, infos: Sequence[SessionInfo], now: datetime
              ) -> None:
        live = [i for i in infos if i.row_id]
        if live:
            with db.wrap_database_errors, db.connection.cursor() as cursor:
                cursor.execute(PG_TOUCH, (now, as_json(live)))


# --- SQLite -------------------------------------------------------------------------

def sqlite_time_formatter(db: BaseDatabaseWrapper) -> Callable[[datetime], Any]:
    """A function giving what Django's SQLite backend stores for a datetime.

    Django stores ``str()`` of the time made naive in the connection's time zone. For
    a UTC connection and a UTC time that is ``str(value)`` without its ``+00:00``; any
    other time goes through Django's own adapter."""
    adapt: Callable[[datetime], Any] = db.ops.adapt_datetimefield_value
    if db.timezone_name != "UTC":
        return adapt

    def utc_text(value: datetime) -> Any:
        return str(value)[:-6] if value.tzinfo is UTC else adapt(value)

    return utc_text


_SQLITE_FINISH = (f'UPDATE "{TABLE}" SET disconnected_at = ?, last_seen = ?, '
                  "close_reason = ?, messages_in = ?, messages_out = ?, heartbeats = ? "
                  "WHERE id = ?")
_SQLITE_TOUCH = (f'UPDATE "{TABLE}" SET last_seen = ?, messages_in = ?, messages_out = ?, '
                 "heartbeats = ? WHERE id = ?")


class SqliteRows:
    """Multi-row INSERT ... RETURNING and executemany on sqlite3's cursor."""

    def insert(self, db: BaseDatabaseWrapper, node: str, infos: Sequence[SessionInfo]
               ) -> None:
        if not infos:
            return
        at = sqlite_time_formatter(db)
        node = node[:100]
        one = "(" + ", ".join(["?"] * len(INSERT_COLUMNS)) + ")"
        head = f'INSERT INTO "{TABLE}" ({", ".join(INSERT_COLUMNS)}) VALUES '
        with db.wrap_database_errors, closing(db.connection.cursor()) as cursor:
            # SQLite's own limit (32,766 here), not Django's conservative 999 (71 rows)
            limit = db.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
            size = max(1, min(BATCH, limit // len(INSERT_COLUMNS)))
            for start in range(0, len(infos), size):
                chunk = infos[start:start + size]
                params: list[Any] = []
                extend = params.extend
                for i in chunk:
                    connected = at(i.connected_at)
                    ended = None if i.disconnected_at is None else at(i.disconnected_at)
                    extend((i.api_key[:64], i.peer_id[:255], node, i.transport[:16],
                            i.remote_addr[:64], i.user_agent[:255], i.client_version[:32],
                            connected, ended or connected, ended, i.close_reason[:100],
                            i.messages_in, i.messages_out, i.heartbeats))
                cursor.execute(f"{head}{', '.join([one] * len(chunk))} RETURNING id", params)
                for info, (row_id,) in zip(chunk, cursor.fetchall(), strict=True):
                    info.row_id = row_id

    def finish(self, db: BaseDatabaseWrapper, infos: Sequence[SessionInfo]) -> None:
        if not infos:
            return
        at = sqlite_time_formatter(db)
        rows = []
        for i in infos:
            ended = at(i.disconnected_at)  # type: ignore[arg-type]  # ended: never None
            rows.append((ended, ended, i.close_reason, i.messages_in, i.messages_out,
                         i.heartbeats, i.row_id))
        with db.wrap_database_errors:
            db.connection.executemany(_SQLITE_FINISH, rows)

    def touch(self, db: BaseDatabaseWrapper, infos: Sequence[SessionInfo], now: datetime
              ) -> None:
        stamp = sqlite_time_formatter(db)(now)
        rows = [(stamp, i.messages_in, i.messages_out, i.heartbeats, i.row_id)
                for i in infos if i.row_id]
        if rows:
            with db.wrap_database_errors:
                db.connection.executemany(_SQLITE_TOUCH, rows)


# --- any other database: the portable statements through Django's cursor ------------

class DjangoRows:
    """Multi-row INSERT (``RETURNING`` where the backend has it, else the ORM) and
    ``executemany`` updates, through Django's cursor and adapters."""

    def insert(self, db: BaseDatabaseWrapper, node: str, infos: Sequence[SessionInfo]
               ) -> None:
        if not infos:
            return
        if not db.features.can_return_rows_from_bulk_insert:
            self._insert_with_orm(node, infos)
            return
        ops = db.ops
        names = ", ".join(ops.quote_name(c) for c in INSERT_COLUMNS)
        one = "(" + ", ".join(["%s"] * len(INSERT_COLUMNS)) + ")"
        size = max(1, min(BATCH, ops.bulk_batch_size(list(INSERT_COLUMNS), infos)))
        adapt = ops.adapt_datetimefield_value
        with db.cursor() as cursor:
            for start in range(0, len(infos), size):
                chunk = infos[start:start + size]
                params: list[Any] = []
                for i in chunk:
                    params += row_values(i, node, adapt)
                cursor.execute(f"INSERT INTO {ops.quote_name(TABLE)} ({names}) VALUES "
                               f"{', '.join([one] * len(chunk))} RETURNING "
                               f"{ops.quote_name('id')}", params)
                for info, (row_id,) in zip(chunk, cursor.fetchall(), strict=True):
                    info.row_id = row_id

    @staticmethod
    def _insert_with_orm(node: str, infos: Sequence[SessionInfo]) -> None:
        from signalling.models import PeerSession

        rows = [PeerSession(**dict(zip(INSERT_COLUMNS, row_values(i, node, lambda t: t),
                                       strict=True))) for i in infos]
        created = PeerSession.objects.bulk_create(rows, batch_size=BATCH)
        for info, row in zip(infos, created, strict=True):
            info.row_id = row.pk

    def finish(self, db: BaseDatabaseWrapper, infos: Sequence[SessionInfo]) -> None:
        adapt = db.ops.adapt_datetimefield_value
        rows = []
        for i in infos:
            ended = adapt(i.disconnected_at)
            rows.append((ended, ended, i.close_reason, i.messages_in, i.messages_out,
                         i.heartbeats, i.row_id))
        _execute_many(db, "UPDATE {table} SET disconnected_at = %s, last_seen = %s, "
                          "close_reason = %s, messages_in = %s, messages_out = %s, "
                          "heartbeats = %s WHERE id = %s", rows)

    def touch(self, db: BaseDatabaseWrapper, infos: Sequence[SessionInfo], now: datetime
              ) -> None:
        stamp = db.ops.adapt_datetimefield_value(now)
        _execute_many(db, "UPDATE {table} SET last_seen = %s, messages_in = %s, "
                          "messages_out = %s, heartbeats = %s WHERE id = %s",
                      [(stamp, i.messages_in, i.messages_out, i.heartbeats, i.row_id)
                       for i in infos if i.row_id])


def row_values(i: SessionInfo, node: str, adapt: Callable[[datetime], Any]
               ) -> tuple[Any, ...]:
    """The values of ``INSERT_COLUMNS`` for ``i`` (each time adapted once)."""
    connected = adapt(i.connected_at)
    ended = None if i.disconnected_at is None else adapt(i.disconnected_at)
    return (i.api_key[:64], i.peer_id[:255], node[:100], i.transport[:16],
            i.remote_addr[:64], i.user_agent[:255], i.client_version[:32],
            connected, connected if ended is None else ended, ended,
            i.close_reason[:100], i.messages_in, i.messages_out, i.heartbeats)


def _execute_many(db: BaseDatabaseWrapper, sql: str, rows: list[tuple[Any, ...]]) -> None:
    """One prepared statement for many rows (the ORM's bulk_update costs far more)."""
    if rows:
        with db.cursor() as cursor:
            cursor.executemany(sql.format(table=db.ops.quote_name(TABLE)), rows)
