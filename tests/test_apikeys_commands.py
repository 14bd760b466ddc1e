"""The key management commands against a real server's database."""

from __future__ import annotations

from tests.servers import LiveServer, manage
from tests.test_apikeys_helpers import (
    StartServer,
    make_keys,
    query,
    run_manage,
)
from tests.waiting import until
from tests.wsclient import join

OLD_SESSIONS = """
from datetime import timedelta
from django.utils import timezone
from signalling.models import PeerSession as S
now = timezone.now()
def row(peer, age_days, closed):
    start = now - timedelta(days=age_days)
    S.objects.create(api_key="peerjs", peer_id=peer, node="old", connected_at=start,
                     disconnected_at=start + timedelta(minutes=5) if closed else None)
row("ancient-closed", 40, True)
row("ancient-live", 40, False)
row("recent-closed", 2, True)
"""


def listkeys_rows(server: LiveServer) -> dict[str, list[str]]:
    lines = manage(server, "listkeys").splitlines()
    assert lines[0].split() == ["key", "name", "state", "live", "sessions", "limit",
                                "discovery", "origins", "last", "used"]
    return {line.split()[0]: line.split() for line in lines[1:-1]}


def test_createkey_stores_every_option_and_refuses_bad_keys_and_origins(
        start_server: StartServer) -> None:
    with start_server() as server:
        key = manage(server, "createkey", "shop", "--key", "shop-1", "--limit", "7",
                     "--discovery", "--origin", "https://Shop.example/", "--origin",
                     "http://[::1]:8080", "--rate", "20", "--queue", "5")
        assert key == "shop-1"
        assert query(server, "SELECT name, concurrent_limit, allow_discovery, "
                     "allowed_origins, rate_limit, queue_limit, active FROM apikeys_apikey "
                     "WHERE key = 'shop-1'") == [
            ("shop", 7, 1, "https://shop.example\nhttp://[::1]:8080", 20, 5, 1)]
        generated = manage(server, "createkey", "random")
        assert len(generated) == 24 and generated.isalnum()
        for bad in (["--key", "has space"], ["--key", "a/b"], ["--key", "k" * 65],
                    ["--key", "shop-1"], ["--origin", "shop.example"],
                    ["--origin", "https://shop.example/path"], ["--limit", "-1"]):
            done = run_manage(server, "createkey", "bad", *bad)
            assert done.returncode == 1, bad
            assert done.stderr.startswith("CommandError: ") and "Traceback" not in done.stderr, bad
        assert query(server, "SELECT count(*) FROM apikeys_apikey WHERE name = 'bad'") == [(0,)]


async def test_listkeys_counts_open_sessions_from_the_database(
        start_server: StartServer) -> None:
    with start_server() as server:
        make_keys(server, {"name": "busy", "key": "busy", "concurrent_limit": 3},
                  {"name": "idle", "key": "idle", "active": False})
        peers = [await join(server, f"p{n}", key="busy") for n in range(2)]
        await until(lambda: query(
            server, "SELECT count(*) FROM signalling_peersession WHERE api_key='busy'"
        ) == [(2,)], in_thread=True)
        rows = listkeys_rows(server)
        assert rows["busy"][:6] == ["busy", "busy", "active", "2", "2", "3"]
        assert rows["idle"][:5] == ["idle", "idle", "inactive", "0", "0"]
        assert rows["peerjs"][2] == "active"
        out = manage(server, "listkeys")
        assert "live = open sessions recorded in the database" in out
        for ws in peers:
            await ws.close()
        await until(lambda: query(
            server, "SELECT count(*) FROM signalling_peersession "
                    "WHERE api_key='busy' AND disconnected_at IS NULL") == [(0,)], in_thread=True)
        assert listkeys_rows(server)["busy"][3:5] == ["0", "2"]
        assert list(listkeys_rows(server)) == ["busy", "peerjs", "idle"]  # by name


def test_prunesessions_removes_only_old_closed_sessions(start_server: StartServer) -> None:
    with start_server() as server:
        manage(server, "shell", "--no-imports", "-c", OLD_SESSIONS)
        assert "would delete 1 " in manage(server, "prunesessions", "--older-than", "30",
                                            "--dry-run")
        assert manage(server, "prunesessions", "--older-than", "30") == (
            "deleted 1 closed sessions older than 30 days")
        left = {peer for (peer,) in query(server, "SELECT peer_id FROM signalling_peersession")}
        assert left == {"ancient-live", "recent-closed"}
        assert manage(server, "prunesessions", "--older-than", "1").startswith("deleted 1 ")
        assert run_manage(server, "prunesessions", "--older-than", "-1").returncode == 1
        assert run_manage(server, "prunesessions").returncode == 2  # DAYS is required


def test_deactivatekey_leaves_other_keys_alone(start_server: StartServer) -> None:
    with start_server() as server:
        make_keys(server, {"name": "a", "key": "key-a"}, {"name": "b", "key": "key-b"})
        out = manage(server, "deactivatekey", "key-a")
        assert out.splitlines()[0] == "deactivated 'key-a' (a)"
        assert dict(query(server, "SELECT key, active FROM apikeys_apikey")) == {
            "peerjs": 1, "key-a": 0, "key-b": 1}
        # Deactivating twice is harmless.
        assert manage(server, "deactivatekey", "key-a").startswith("deactivated 'key-a'")
