"""Per-key limits, secrets at rest, the admin login throttle and a key lifecycle that
keeps history (issue 13, items 6 to 8), against live servers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from websockets.exceptions import ConnectionClosed

from apikeys.tenants import Tenant
from signalling.protocol import Errors
from tests.adminhttp import AdminHTTP
from tests.servers import ROOT, LiveServer, manage, server_env
from tests.test_apikeys_helpers import StartServer, make_keys, query
from tests.waiting import until
from tests.wsclient import closed_with, join, open_socket, recv

PASSWORD = "correct horse battery staple 13"


def tenant(rate: int = 0, burst: int = 0) -> Tenant:
    return Tenant("k", 0, False, (), rate, 0, rate_burst=burst)


def test_a_keys_rate_caps_its_burst_unless_it_sets_one() -> None:
    assert tenant(50).message_rate(1000, 5000) == (50.0, 50.0)
    assert tenant(50, 200).message_rate(1000, 5000) == (50.0, 200.0)
    assert tenant().message_rate(1000, 5000) == (1000.0, 5000.0)
    assert tenant(0, 10).message_rate(1000, 5000) == (1000.0, 10.0)


async def flood(server: LiveServer, key: str, sender_id: str, count: int) -> tuple[int, float]:
    """Send ``count`` messages at once; how many arrived before the sender was cut off."""
    receiver = await join(server, f"{sender_id}-rx", key=key)
    sender = await join(server, sender_id, key=key)
    started = time.monotonic()
    frame = json.dumps({"type": "CANDIDATE", "dst": f"{sender_id}-rx", "payload": 1})
    with contextlib.suppress(ConnectionClosed):  # closed by the server while we send
        for _ in range(count):
            await sender.send(frame)
    elapsed = time.monotonic() - started
    assert await closed_with(sender) == 1008
    got = 0
    try:
        while True:
            await asyncio.wait_for(receiver.recv(), 1.0)
            got += 1
    except TimeoutError:
        pass
    await receiver.close()
    return got, elapsed


async def test_a_key_at_50_per_second_cannot_send_5000_at_once(
        start_server: StartServer) -> None:
    with start_server() as server:
        make_keys(server, {"name": "slow", "key": "slow", "rate_limit": 50},
                  {"name": "bursty", "key": "bursty", "rate_limit": 50, "rate_burst": 200})
        got, elapsed = await flood(server, "slow", "s", 5000)
        assert got <= 50 + 50 * (elapsed + 1), (got, elapsed)
        got, elapsed = await flood(server, "bursty", "b", 5000)
        assert 200 <= got <= 200 + 50 * (elapsed + 1), (got, elapsed)
        assert query(server, "SELECT count FROM signalling_limithit WHERE "
                             "\"limit\" = 'message rate'") != []


def fresh_env(var: Path, **extra: str) -> dict[str, str]:
    return server_env(var, 0, **extra)


def run(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, text=True,
                          capture_output=True, check=check)


def raw_secret(var: Path, key: str) -> str:
    with closing(sqlite3.connect(var / "peerhub.sqlite3")) as db:
        return str(db.execute("SELECT token_secret FROM apikeys_apikey WHERE key = ?",
                              (key,)).fetchone()[0])


def test_var_and_the_database_are_owner_only(tmp_path: Path) -> None:
    var = tmp_path / "new" / "var"
    run(fresh_env(var), "migrate", "--noinput", "-v", "0")
    assert stat.S_IMODE(var.stat().st_mode) == 0o700
    assert stat.S_IMODE((var / "peerhub.sqlite3").stat().st_mode) == 0o600
    assert stat.S_IMODE((var / "secret_key").stat().st_mode) == 0o600
    # An install from before: loosened modes are tightened at start.
    var.chmod(0o755)
    (var / "peerhub.sqlite3").chmod(0o644)
    run(fresh_env(var), "check")
    assert stat.S_IMODE(var.stat().st_mode) == 0o700
    assert stat.S_IMODE((var / "peerhub.sqlite3").stat().st_mode) == 0o600


def test_signing_secrets_are_encrypted_at_rest_and_old_rows_are_migrated(
        tmp_path: Path) -> None:
    var = tmp_path / "var"
    env = fresh_env(var, SECRET_KEY="first-secret-key-" + "x" * 40)
    run(env, "migrate", "apikeys", "0003", "--noinput", "-v", "0")
    run(env, "migrate", "signalling", "--noinput", "-v", "0")
    plain = "legacy-plain-secret-0123456789abcdefghijklmno"
    with closing(sqlite3.connect(var / "peerhub.sqlite3")) as db:
        db.execute("INSERT INTO apikeys_apikey (name, key, active, concurrent_limit, "
                   "allow_discovery, allowed_origins, rate_limit, queue_limit, notes, "
                   "require_signed_tokens, token_secret, stun_urls, created) VALUES "
                   "('old', 'oldkey', 1, 0, 0, '', 0, 0, '', 1, ?, '', '2026-01-01')",
                   (plain,))
        db.commit()
    run(env, "migrate", "--noinput", "-v", "0")
    stored = raw_secret(var, "oldkey")
    assert stored.startswith("enc1:") and plain not in stored
    # Tokens minted with the migrated secret verify as before.
    token = run(env, "minttoken", "oldkey", "alice").stdout.strip()
    from signalling.tokens import verify_token
    assert verify_token(plain, "oldkey", "alice", token, time.time())
    # A fresh secret is never in the column either.
    fresh = run(env, "rotatesecret", "oldkey").stdout.strip()
    assert fresh not in raw_secret(var, "oldkey") and len(fresh) >= 32
    # Rotating SECRET_KEY: without the fallback the secret is unreadable (refused,
    # never overwritten); with it, rotatesecretkey re-encrypts; then the old key can go.
    new_key = "second-secret-key-" + "y" * 40
    before = raw_secret(var, "oldkey")
    failed = run({**env, "SECRET_KEY": new_key}, "minttoken", "oldkey", "bob", check=False)
    assert failed.returncode != 0 and "cannot be decrypted" in failed.stderr
    assert raw_secret(var, "oldkey") == before
    out = run({**env, "SECRET_KEY": new_key, "SECRET_KEY_FALLBACKS": env["SECRET_KEY"]},
              "rotatesecretkey").stdout
    assert "re-encrypted the signing secrets of 1 key(s)" in out
    assert raw_secret(var, "oldkey") != before
    token = run({**env, "SECRET_KEY": new_key}, "minttoken", "oldkey", "bob").stdout.strip()
    assert verify_token(fresh, "oldkey", "bob", token, time.time())


async def test_a_rotation_with_grace_keeps_old_tokens_valid_until_it_ends(
        start_server: StartServer) -> None:
    with start_server() as server:
        make_keys(server, {"name": "signed", "key": "signed", "require_signed_tokens": True})
        manage(server, "rotatesecret", "signed")
        old_token = manage(server, "minttoken", "signed", "alice").splitlines()[-1]
        manage(server, "rotatesecret", "signed", "--grace", "3600")
        new_token = manage(server, "minttoken", "signed", "bob").splitlines()[-1]
        for peer, token in (("alice", old_token), ("bob", new_token)):
            ws = await join(server, peer, token, key="signed")
            await ws.close()
        # Ending the grace period (the admin's field) refuses the old tokens at once.
        manage(server, "shell", "--no-imports", "-c",
               "from apikeys.models import ApiKey; from django.utils import timezone; "
               "ApiKey.objects.filter(key='signed').update("
               "previous_secret_expires=timezone.now())")
        refused = await open_socket(server, "alice", old_token, key="signed")
        assert await recv(refused) == {"type": "ERROR", "payload": {"msg": Errors.INVALID_TOKEN}}
        # A rotation without grace drops the previous secret too.
        manage(server, "rotatesecret", "signed", "--grace", "3600")
        manage(server, "rotatesecret", "signed")
        refused = await open_socket(server, "bob", new_token, key="signed")
        assert (await recv(refused))["payload"]["msg"] == Errors.INVALID_TOKEN


def make_admin(server: LiveServer) -> None:
    env = {**server.env, "DJANGO_SUPERUSER_PASSWORD": PASSWORD}
    for name in ("admin", "other"):
        subprocess.run([sys.executable, "manage.py", "createsuperuser", "--noinput",
                        "--username", name, "--email", f"{name}@example.com"],
                       cwd=ROOT, env=env, check=True, capture_output=True)


def test_the_admin_login_is_throttled_per_address_and_per_user(
        start_server: StartServer) -> None:
    with start_server(PROXY_HEADERS="true") as server:
        make_admin(server)
        # Per address: five failures (any user names), then 429 even for a good login.
        one = AdminHTTP(server, "203.0.113.1")
        assert [one.login(f"user{n}", "wrong") for n in range(5)] == [200] * 5
        started = time.monotonic()
        status, headers, body = one.request("POST", "/admin/login/", {
            "username": "admin", "password": PASSWORD})
        assert status == 429 and int(headers["Retry-After"]) > 800
        assert "Too many failed logins" in body
        assert time.monotonic() - started < 5  # no password hash was computed for it
        # Per user: five failures from five addresses lock the user name everywhere.
        for n in range(5):
            assert AdminHTTP(server, f"198.51.100.{n}").login("other", "wrong") == 200
        assert AdminHTTP(server, "198.51.100.99").login("other", PASSWORD) == 429
        # Anyone else, from elsewhere, logs in as usual.
        assert AdminHTTP(server, "192.0.2.10").login("admin", PASSWORD) == 302
        assert server.process.poll() is None


async def test_key_lifecycle_keeps_history_and_shows_live_peers_first(
        start_server: StartServer) -> None:
    with start_server() as server:
        make_admin(server)
        make_keys(server, {"name": "shop", "key": "shop"}, {"name": "blog", "key": "blog"})
        pk = query(server, "SELECT id FROM apikeys_apikey WHERE key = 'shop'")[0][0]
        peers = [await join(server, f"buyer{n}", key="shop") for n in range(3)]
        admin = AdminHTTP(server)
        assert await asyncio.to_thread(admin.login, "admin", PASSWORD) == 302
        # The key string is read-only once created; a forged POST cannot change it.
        _, _, page = await asyncio.to_thread(admin.request, "GET",
                                             f"/admin/apikeys/apikey/{pk}/change/")
        assert 'name="key"' not in page and "buyer0" in page
        status, _, _ = await asyncio.to_thread(
            admin.request, "POST", f"/admin/apikeys/apikey/{pk}/change/",
            {"name": "shop", "key": "renamed", "active": "on", "concurrent_limit": "0",
             "rate_limit": "0", "rate_burst": "0", "queue_limit": "0"})
        assert status == 302
        assert query(server, "SELECT key FROM apikeys_apikey WHERE id = ?", pk) == [("shop",)]
        # Numbers in ASCII digits only.
        status, _, page = await asyncio.to_thread(
            admin.request, "POST", f"/admin/apikeys/apikey/{pk}/change/",
            {"name": "shop", "active": "on", "concurrent_limit": "\u0661\u0662",
             "rate_limit": "0", "rate_burst": "0", "queue_limit": "0"})
        assert status == 200 and "Enter a whole number" in page
        # Delete confirmation (single and bulk) lists the live peers.
        _, _, page = await asyncio.to_thread(admin.request, "GET",
                                             f"/admin/apikeys/apikey/{pk}/delete/")
        assert "Live peers of shop" in page and all(f"buyer{n}" in page for n in range(3))
        _, _, page = await asyncio.to_thread(admin.request, "POST", "/admin/apikeys/apikey/", {
            "action": "delete_selected", "_selected_action": [pk]})
        assert "Live peers of shop" in page and "3: buyer0, buyer1, buyer2" in page
        # Deactivation: first a page with the live peers, nothing changed yet ...
        _, _, page = await asyncio.to_thread(admin.request, "POST", "/admin/apikeys/apikey/", {
            "action": "deactivate_keys", "_selected_action": [pk]})
        assert '<span class="live-count">3</span>' in page and "buyer2" in page
        assert query(server, "SELECT active FROM apikeys_apikey WHERE id = ?", pk) == [(1,)]
        # ... then, confirmed, the key is off and its peers are closed.
        status, _, _ = await asyncio.to_thread(admin.request, "POST", "/admin/apikeys/apikey/", {
            "action": "deactivate_keys", "_selected_action": [pk], "confirm": "yes"})
        assert status == 302
        assert query(server, "SELECT active FROM apikeys_apikey WHERE id = ?", pk) == [(0,)]
        for ws in peers:
            assert await closed_with(ws, 10) is not None
        await until(lambda: all(r[0] for r in query(
            server, "SELECT disconnected_at IS NOT NULL FROM signalling_peersession "
                    "WHERE api_key = 'shop'")), in_thread=True)


def test_with_redis_the_login_throttle_holds_across_nodes(
        cluster: Callable[..., list[LiveServer]]) -> None:
    n1, n2 = cluster(2, PROXY_HEADERS="true")
    make_admin(n1)
    assert [AdminHTTP(n1, "203.0.113.5").login("admin", "wrong") for _ in range(3)] == [200] * 3
    assert [AdminHTTP(n2, "203.0.113.5").login("admin", "wrong") for _ in range(2)] == [200] * 2
    assert AdminHTTP(n1, "203.0.113.77").login("admin", PASSWORD) == 429  # the user name
    assert AdminHTTP(n2, "203.0.113.5").login("someone", PASSWORD) == 429  # the address
    assert AdminHTTP(n2, "192.0.2.1").login("other", PASSWORD) == 302


async def test_in_a_cluster_the_admin_lists_live_peers_of_every_node(
        cluster: Callable[..., list[LiveServer]]) -> None:
    n1, n2 = cluster(2)
    make_admin(n1)
    make_keys(n1, {"name": "spread", "key": "spread"})
    pk = manage(n1, "shell", "--no-imports", "-c", "from apikeys.models import ApiKey; "
                "print(ApiKey.objects.get(key='spread').pk)").splitlines()[-1]
    peers = [await join(n2, "far-away", key="spread"), await join(n1, "close-by", key="spread")]
    admin = AdminHTTP(n1)
    assert await asyncio.to_thread(admin.login, "admin", PASSWORD) == 302
    _, _, page = await asyncio.to_thread(admin.request, "POST", "/admin/apikeys/apikey/", {
        "action": "deactivate_keys", "_selected_action": [pk]})
    assert '<span class="live-count">2</span>' in page
    assert "far-away" in page and "close-by" in page
    for ws in peers:
        await ws.close()
