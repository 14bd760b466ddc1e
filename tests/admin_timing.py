"""Time the admin's pages against the database in DATABASE_URL: ``python -m
tests.admin_timing URL [URL ...]`` prints ``{url: [status, best ms, median ms, rows]}``
as JSON, where ``rows`` is how many session rows the page's queries read, from
PostgreSQL's own plans (``EXPLAIN (ANALYZE, FORMAT JSON)`` of each query: rows returned
by every scan of ``signalling_peersession`` plus those its filters removed). Unlike the
times, that count does not depend on how busy the machine is.

Run in its own process so that it uses the database it is pointed at (the test suite's
own database is SQLite); a staff user is made if missing and logged in with the Django
test client.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from typing import Any


def main(urls: list[str]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peerhub.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, setup_test_environment

    setup_test_environment()
    user, _ = get_user_model().objects.get_or_create(
        username="timer", defaults={"is_staff": True, "is_superuser": True})
    client = Client()
    client.force_login(user)
    results = {}
    for url in urls:
        client.get(url)  # warm: caches, the first query plans
        times, status = [], 0
        for _ in range(5):
            started = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
            status = response.status_code
        with CaptureQueriesContext(connection) as queries:
            client.get(url)
        rows = sum(session_rows_read(connection, q["sql"]) for q in queries.captured_queries
                   if q["sql"].lstrip().upper().startswith("SELECT")
                   and "signalling_peersession" in q["sql"])
        results[url] = [status, round(min(times), 1), round(statistics.median(times), 1), rows]
    print(json.dumps(results))


def session_rows_read(connection: Any, sql: str) -> int:
    """Rows the plan of ``sql`` read from the sessions table (``sql`` as Django logged
    it, parameters inlined: the admin's queries only carry quoted literals and numbers)."""
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql)
        (plan,) = cursor.fetchone()
    if isinstance(plan, str):
        plan = json.loads(plan)
    return _rows(plan[0]["Plan"])


def _rows(node: dict[str, Any]) -> int:
    own = 0
    if node.get("Relation Name") == "signalling_peersession":
        loops = int(node.get("Actual Loops", 1))
        own = loops * (int(node.get("Actual Rows", 0))
                       + int(node.get("Rows Removed by Filter", 0))
                       + int(node.get("Rows Removed by Index Recheck", 0)))
    return own + sum(_rows(child) for child in node.get("Plans", ()))


if __name__ == "__main__":
    main(sys.argv[1:])
