"""Deactivating or deleting a key, from another process, closes its live peers.

The command runs in its own process, as an admin in a cluster would; the server's key
watcher notices within KEY_WATCH_INTERVAL and sends the PeerJS ERROR, then closes 1008.
"""

from __future__ import annotations

import asyncio
import time

from signalling.protocol import Errors
from tests.servers import manage
from tests.test_apikeys_helpers import (
    StartServer,
    close_reasons,
    make_keys,
    query,
    run_manage,
)
from tests.waiting import until
from tests.wsclient import closed_with, join, open_socket, recv, send

DEACTIVATED = {"type": "ERROR", "payload": {"msg": Errors.KEY_DEACTIVATED}}


async def test_deactivatekey_closes_live_peers_with_error_then_1008(
        start_server: StartServer) -> None:
    with start_server(KEY_WATCH_INTERVAL="500") as server:
        make_keys(server, {"name": "doomed", "key": "doomed"},
                  {"name": "bystander", "key": "bystander"})
        a, b = await join(server, "a", key="doomed"), await join(server, "b", key="doomed")
        other = await join(server, "a", key="bystander")
        out = await asyncio.to_thread(manage, server, "deactivatekey", "doomed")
        assert "deactivated 'doomed' (doomed)" in out
        started = time.monotonic()
        for ws in (a, b):
            assert await recv(ws) == DEACTIVATED
            assert await closed_with(ws) == 1008
        assert time.monotonic() - started < 3
        refused = await open_socket(server, "c", key="doomed")
        assert (await recv(refused))["type"] == "INVALID-KEY"
        assert await closed_with(refused) == 1008
        await send(other, type="CANDIDATE", dst="a", payload="unaffected")
        assert (await recv(other))["payload"] == "unaffected"
        await until(lambda: close_reasons(server, "doomed") == {
            "a": "key deactivated", "b": "key deactivated"}, in_thread=True)
        await other.close()


async def test_deleted_key_closes_its_peers_and_reactivation_lets_peers_back(
        start_server: StartServer) -> None:
    with start_server(KEY_WATCH_INTERVAL="500") as server:
        make_keys(server, {"name": "gone", "key": "gone"}, {"name": "back", "key": "back"})
        g, b = await join(server, "g", key="gone"), await join(server, "b", key="back")
        await asyncio.to_thread(manage, server, "shell", "--no-imports", "-c",
                                "from apikeys.models import ApiKey as K; "
                                "K.objects.filter(key='gone').delete()")
        assert await recv(g) == DEACTIVATED
        assert await closed_with(g) == 1008
        await asyncio.to_thread(manage, server, "deactivatekey", "back")
        assert await recv(b) == DEACTIVATED
        await asyncio.to_thread(manage, server, "shell", "--no-imports", "-c",
                                "from apikeys.models import ApiKey as K; "
                                "K.objects.filter(key='back').update(active=True)")
        again = await join(server, "b", key="back")  # KEY_CACHE_SECONDS=0 in tests
        await again.close()
        await until(lambda: close_reasons(server, "gone") == {"g": "key deleted"}, in_thread=True)


async def test_deactivatekey_reports_unknown_keys_and_fails(
        start_server: StartServer) -> None:
    with start_server() as server:
        make_keys(server, {"name": "real", "key": "real"})
        done = run_manage(server, "deactivatekey", "real", "nope")
        assert done.returncode == 1
        assert "deactivated 'real'" in done.stdout
        assert "no such key: 'nope'" in done.stderr
        assert query(server, "SELECT active FROM apikeys_apikey WHERE key='real'") == [(0,)]
