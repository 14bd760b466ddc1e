"""Time the admin's pages against the database in DATABASE_URL: ``python -m
tests.admin_timing URL [URL ...]`` prints ``{url: [status, best ms, median ms]}`` as JSON.

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


def main(urls: list[str]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peerhub.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.test.utils import setup_test_environment

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
        results[url] = [status, round(min(times), 1), round(statistics.median(times), 1)]
    print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1:])
