"""``manage.py migrate_locked``: ``migrate`` under a lock, so nodes can start together.

Several nodes started at the same moment on a fresh database would otherwise all run
the migrations and all but one fail (``relation django_migrations already exists``,
IntegrityError). With PostgreSQL the lock is a session advisory lock; with SQLite it
is an exclusive file lock beside the database file. The first node migrates, the others
wait for it and then find nothing left to do. Every option is passed to ``migrate``.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import connections

#: The advisory lock id (any fixed 64-bit number; this one spells "peerhub").
ADVISORY_LOCK_ID = 0x70656572687562


@contextmanager
def migration_lock(alias: str = "default") -> Iterator[float]:
    """Hold the cluster-wide migration lock; yields the seconds spent waiting for it."""
    conn = connections[alias]
    started = time.monotonic()
    if conn.vendor == "postgresql":
        with conn.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [ADVISORY_LOCK_ID])
        try:
            yield time.monotonic() - started
        finally:
            with conn.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [ADVISORY_LOCK_ID])
        return
    name = str(conn.settings_dict.get("NAME") or "")
    if conn.vendor == "sqlite" and name and name != ":memory:" and "mode=memory" not in name:
        lock_path = Path(f"{name}.migrate-lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield time.monotonic() - started
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    yield 0.0  # another database: one process at a time is the operator's job


class Command(BaseCommand):
    help = "Run migrate while holding a database-wide lock (safe for concurrent starts)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--database", default="default")
        parser.add_argument("--noinput", "--no-input", action="store_false",
                            dest="interactive")

    def handle(self, *args: Any, **options: Any) -> None:
        alias = options["database"]
        verbosity = int(options.get("verbosity", 1))
        with migration_lock(alias) as waited:
            if waited > 0.5 and verbosity:
                self.stdout.write(f"waited {waited:.1f}s for another node's migrations")
            call_command("migrate", database=alias, interactive=options["interactive"],
                         verbosity=verbosity)
