"""The admin with history: rollup totals that match the session rows, retention, and the
key list, session list and searches timed with 2 million session rows on PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import missing
from tests.servers import ROOT, LiveServer, manage, prepare_database
from tests.services import fresh_postgres_database, postgres_reachable
from tests.test_apikeys_helpers import StartServer, make_keys, query
from tests.waiting import until
from tests.wsclient import join, recv, send

TOTALS = """
import json
from django.db.models import Count, F, Sum
from apikeys.models import ApiKey
from apikeys.usage import with_totals
from signalling.models import PeerSession
from signalling.rollup import key_totals
raw = {r["api_key"]: [r["n"], r["m"], r["hb"]] for r in PeerSession.objects.order_by()
       .values("api_key").annotate(n=Count("id"), m=Sum(F("messages_in") + F("messages_out")),
                                   hb=Sum("heartbeats"))}
listed = {k.key: [k.session_count, k.message_count] for k in with_totals(ApiKey.objects.all())}
rolled = {k: [t.sessions, t.messages, t.heartbeats] for k, t in key_totals().items()}
from django.db.models import Max
from signalling.models import UsageHour
peaks = {r["api_key"]: r["p"] for r in UsageHour.objects.values("api_key").annotate(p=Max("peak_live"))}
print(json.dumps({"raw": raw, "listed": listed, "rolled": rolled, "peaks": peaks}))
"""


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
async def test_rollup_totals_match_the_session_rows(start_server: StartServer,
                                                    database: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    if database == "sqlite":
        with start_server() as server:
            figures = await load_and_read_totals(server)
    else:
        if not postgres_reachable():
            missing("PostgreSQL is not reachable at 127.0.0.1:5432")
        with fresh_postgres_database() as url:
            prepare_database(tmp_path / "pg", {**os.environ, "DATABASE_URL": url,
                                               "PEERHUB_VAR_DIR": str(tmp_path / "pg")})
            with start_server(DATABASE_URL=url) as server:
                figures = await load_and_read_totals(server)
    raw, listed, rolled = figures["raw"], figures["listed"], figures["rolled"]
    assert raw["roll-a"][0] == 6 and raw["roll-b"][0] == 3
    assert raw["roll-a"][2] == 3 and raw["roll-b"][2] == 3  # heartbeats recorded
    for key in ("roll-a", "roll-b"):
        assert listed[key] == raw[key][:2]
        assert rolled[key] == raw[key]
    # Two roll-a peers were connected at once in every round (more if a round's closes
    # were seen after the next round's opens), one roll-b peer.
    assert 2 <= figures["peaks"]["roll-a"] <= 6 and 1 <= figures["peaks"]["roll-b"] <= 3


CLOSED = ("from signalling.models import PeerSession as S; "
          "print(S.objects.filter(disconnected_at__isnull=False).count())")


async def load_and_read_totals(server: LiveServer) -> dict[str, Any]:
    """Three rounds of peers (two closed, one open at stop), then every figure."""
    make_keys(server, {"key": "roll-a", "name": "a"}, {"key": "roll-b", "name": "b"})
    for round_ in range(3):
        a = await join(server, f"a{round_}", key="roll-a")
        b = await join(server, f"b{round_}", key="roll-a")
        c = await join(server, f"c{round_}", key="roll-b")
        for _ in range(4):
            await send(a, type="OFFER", dst=f"b{round_}", payload={})
            await recv(b)
        await a.send('{"type":"HEARTBEAT"}')
        await c.send('{"type":"HEARTBEAT"}')
        if round_ < 2:  # the last round stays open until the server stops
            for ws in (a, b, c):
                await ws.close()
    await until(lambda: manage(server, "shell", "--no-imports", "-c", CLOSED)
                     .splitlines()[-1] == "6", timeout=20, in_thread=True)
    server.stop()  # the recorder writes what is pending at exit
    out = manage(server, "shell", "--no-imports", "-c", TOTALS)
    return dict(json.loads(out.splitlines()[-1]))


OLD_SESSIONS = """
from datetime import timedelta
from django.utils import timezone
from signalling.models import PeerSession as S
now = timezone.now()
def row(peer, age_days, closed):
    start = now - timedelta(days=age_days)
    S.objects.create(api_key="peerjs", peer_id=peer, node="old", connected_at=start,
                     disconnected_at=start + timedelta(minutes=5) if closed else None)
for n in range(30):
    row(f"ancient-{n}", 40, True)
row("ancient-live", 40, False)
row("recent-closed", 2, True)
"""


async def test_retention_prunes_old_closed_sessions_in_the_serving_process(
        start_server: StartServer) -> None:
    with start_server(SESSION_RETENTION_DAYS="7") as server:
        manage(server, "shell", "--no-imports", "-c", OLD_SESSIONS)
        ws = await join(server, "waker")  # the recorder runs once there is something

        def pruned() -> set[str] | None:
            left = {r[0] for r in query(server, "SELECT peer_id FROM signalling_peersession")}
            return None if "ancient-0" in left else left

        left = await until(pruned, in_thread=True)
        await ws.close()
    assert left >= {"ancient-live", "recent-closed"}
    assert not any(p.startswith("ancient-") and p != "ancient-live" for p in left)
    assert "pruned 30 peer sessions" in server.log()


KEYS = ("from apikeys.models import ApiKey; ApiKey.objects.all().delete(); "
        "ApiKey.objects.bulk_create([ApiKey(name=f'tenant {k}', key=f'key-{k}', "
        "concurrent_limit=40) for k in range(1, 51)])")
GENERATE = """
INSERT INTO signalling_peersession (api_key, peer_id, node, transport, remote_addr,
  user_agent, client_version, connected_at, last_seen, disconnected_at, close_reason,
  messages_in, messages_out, heartbeats)
SELECT 'key-' || (1 + i % 50), md5(i::text), 'node-' || (i % 4), 'websocket',
  '10.0.' || (i % 250) || '.' || (i % 200), 'Mozilla/5.0', '1.5.5',
  now() - i * interval '1.3 second', now() - i * interval '1.3 second' + interval '5 minutes',
  CASE WHEN i <= 1000 THEN NULL ELSE now() - i * interval '1.3 second' + interval '5 minutes'
  END, CASE WHEN i <= 1000 THEN '' ELSE 'closed by client' END, 40 + i % 100, 30 + i % 90,
  i % 40
FROM generate_series(1, 2000000) AS i;
"""

PAGES = ["/admin/apikeys/apikey/", "/admin/apikeys/apikey/?q=tenant+7",
         "/admin/apikeys/apikey/?o=-4", "/admin/apikeys/apikey/?o=-3",  # by sessions, live
         "/admin/signalling/peersession/", "/admin/signalling/peersession/?q=abc",
         "/admin/signalling/peersession/?q=a", "/admin/signalling/peersession/?key=key-7",
         "/admin/signalling/peersession/?key=key-7&state=closed&q=ab",
         "/admin/signalling/peersession/?node=node-1&since=24h",
         "/admin/signalling/peersession/?state=live"]
#: The dashboard reads the rollups only (50 keys x 4 nodes x 720 hours for 30 days); the
#: issue sets no bound for it, this one catches a page that falls back to the sessions.
DASHBOARDS = ["/dashboard/", "/dashboard/?range=7d", "/dashboard/?range=30d",
              "/dashboard/?range=30d&node=node-1"]
#: Session rows one admin or dashboard page may read (of 2,000,000): a sequential scan,
#: the fall-back this test is for, reads all of them. Measured at 8c54944: the key list
#: 50,000 (its live counts through the open-session index), a one-letter search 163,451
#: (through the search index), the node-and-24h filter 40,402, every other page 5,000 or
#: fewer, the dashboards none.
ROWS_BOUND = 200_000
HANG_MS = 10_000


@pytest.mark.timeout(900)
def test_admin_pages_read_few_of_2_million_sessions(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Runs once (about two minutes): 2M rows made by generate_series in a fresh database,
    the rollups rebuilt from them, then each page timed (best of five after a warm-up)."""
    if not postgres_reachable():
        missing("PostgreSQL is not reachable at 127.0.0.1:5432")
    import psycopg

    with fresh_postgres_database() as url:
        env = {**os.environ, "DATABASE_URL": url, "PEERHUB_VAR_DIR": str(tmp_path)}
        prepare_database(tmp_path, env)
        subprocess.run([sys.executable, "manage.py", "shell", "--no-imports", "-c", KEYS],
                       cwd=ROOT, env=env, check=True, capture_output=True)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(GENERATE)
        subprocess.run([sys.executable, "manage.py", "rollupsessions", "--rebuild"],
                       cwd=ROOT, env=env, check=True, capture_output=True)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ANALYZE")
            (count,) = conn.execute("SELECT COUNT(*) FROM signalling_peersession").fetchone()
            (key7,) = conn.execute("SELECT COUNT(*) FROM signalling_peersession "
                                   "WHERE api_key = 'key-7'").fetchone()
        assert count == 2_000_000
        out = subprocess.run([sys.executable, "-m", "tests.admin_timing", *PAGES, *DASHBOARDS],
                             cwd=ROOT,
                             env=env, check=True, capture_output=True, text=True)
        timings = json.loads(out.stdout.strip().splitlines()[-1])
        listing = subprocess.run(
            [sys.executable, "manage.py", "shell", "--no-imports", "-c",
             "from apikeys.models import ApiKey; from apikeys.usage import with_totals; "
             "print(with_totals(ApiKey.objects.filter(key='key-7')).get().session_count)"],
            cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    print(json.dumps(timings, indent=1))
    assert int(listing.stdout.strip().splitlines()[-1]) == key7  # exact, not estimated
    # What makes a page fast at this size is reading few of the 2M rows: PostgreSQL's
    # own count of the rows each page read, the same however busy the machine is.
    heavy = {url: t for url, t in timings.items() if t[0] != 200 or t[3] > ROWS_BOUND}
    assert heavy == {}, timings
    # The wall-clock times are printed above; only a hang is failed on here (the
    # issue's 300 ms is read off those figures on a quiet machine, not asserted under
    # load).
    hung = {url: t for url, t in timings.items() if t[1] > HANG_MS}
    assert hung == {}, timings
