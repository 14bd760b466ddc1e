"""Helpers shared by the API-key, admin and dashboard tests (this module has no tests).

A test server's database is the SQLite file in its ``PEERHUB_VAR_DIR``; reading it
directly is much faster than a ``manage.py shell`` per look.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, closing
from pathlib import Path
from typing import Any

from tests.servers import ROOT, LiveServer, manage

StartServer = Callable[..., AbstractContextManager[LiveServer]]


def db_path(server: LiveServer) -> Path:
    """The SQLite file ``server`` uses."""
    return Path(server.env["PEERHUB_VAR_DIR"]) / "peerhub.sqlite3"


def query(server: LiveServer, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows of a read-only query against ``server``'s database."""
    with closing(sqlite3.connect(f"file:{db_path(server)}?mode=ro", uri=True,
                                 timeout=20)) as db:
        return list(db.execute(sql, params))


def make_keys(server: LiveServer, *keys: dict[str, Any]) -> None:
    """Create API keys (model field values; ``key`` and ``name`` at least) in one go."""
    code = ("import json; from apikeys.models import ApiKey; "
            f"[ApiKey.objects.create(**k) for k in json.loads({json.dumps(json.dumps(keys))})]")
    manage(server, "shell", "--no-imports", "-c", code)


def run_manage(server: LiveServer, *args: str) -> subprocess.CompletedProcess[str]:
    """``manage.py`` against ``server``'s database, failures included."""
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=server.env,
                          capture_output=True, text=True)


def close_reasons(server: LiveServer, key: str) -> dict[str, str]:
    """``{peer_id: close_reason}`` of ``key``'s recorded sessions ("" while live)."""
    return dict(query(server, "SELECT peer_id, close_reason FROM signalling_peersession "
                              "WHERE api_key = ?", key))


def log_lines(server: LiveServer, needle: str, since: int = 0) -> list[str]:
    """Lines of ``server``'s log after byte ``since`` that contain ``needle``."""
    return [line for line in server.log()[since:].splitlines() if needle in line]
