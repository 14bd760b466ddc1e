"""A peerhub process on a fresh PostgreSQL database, for the integrity tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.servers import LiveServer, prepare_database, run_server, server_env


@contextmanager
def pg_server(var: Path, **overrides: str) -> Iterator[tuple[LiveServer, str]]:
    """``(server, database URL)``: a migrated fresh database and a server on it."""
    from tests.conftest import missing
    from tests.services import fresh_postgres_database, postgres_reachable

    if not postgres_reachable():
        missing("PostgreSQL not reachable (set TEST_POSTGRES_URL)")
    with fresh_postgres_database() as db_url:
        prepare_database(var, server_env(var, 0, DATABASE_URL=db_url))
        with run_server(var / "node", None, DATABASE_URL=db_url, **overrides) as server:
            yield server, db_url


def pg_rows(db_url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows of one query against the database at ``db_url``."""
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        cursor = conn.execute(sql, params)  # type: ignore[arg-type]
        return list(cursor.fetchall()) if cursor.description else []
