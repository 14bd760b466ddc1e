"""The control plane on the channel layer: Django code in another process kicks a peer,
bans an address and lists live peers; a key change reaches both nodes at once."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import pytest

from signalling.protocol import Errors
from tests.servers import LiveServer, manage
from tests.waiting import eventually
from tests.wsclient import closed_with, join, nothing_arrives, open_socket, recv, rejoin

pytestmark = pytest.mark.cluster
Cluster = Callable[..., list[LiveServer]]


async def django(server: LiveServer, code: str) -> str:
    """Run ``code`` in ``manage.py shell`` with the cluster's settings; its last line."""
    out = await asyncio.to_thread(manage, server, "shell", "--no-imports", "-c", code)
    return out.splitlines()[-1] if out else ""


async def test_kick_from_django_code_reaches_the_peer_on_the_other_node(
        cluster: Cluster) -> None:
    n1, n2 = cluster(2)
    a, b = await join(n1, "A"), await join(n2, "B")
    await django(n1, "from signalling.control import kick_peer; "
                     "kick_peer('peerjs', 'B', reason='test kick')")
    assert await recv(b, 10) == {"type": "ERROR", "payload": {"msg": Errors.KICKED}}
    assert await closed_with(b) == 1008
    assert await nothing_arrives(a, 0.3)
    # the id was released (the release crosses nodes a moment after the close)
    again = await rejoin(n1, "B", token="fresh")
    await again.close()
    await a.close()


async def test_a_ban_refuses_and_closes_the_address_on_every_node_until_lifted(
        cluster: Cluster) -> None:
    n1, n2 = cluster(2)
    a = await join(n2, "A")  # from 127.0.0.1, like every test client
    await django(n1, "from signalling.control import ban_address; "
                     "ban_address('127.0.0.1', 60, reason='test')")
    assert await recv(a, 10) == {"type": "ERROR", "payload": {"msg": Errors.BANNED}}
    assert await closed_with(a) == 1008
    for node in (n1, n2):
        refused = await open_socket(node, "X")
        assert await recv(refused, 10) == {"type": "ERROR",
                                           "payload": {"msg": Errors.BANNED}}
        assert await closed_with(refused) == 1008
    import urllib.error
    import urllib.request

    try:
        await asyncio.to_thread(urllib.request.urlopen, f"{n2.base_url}peerjs/id", None, 10)
        raise AssertionError("a banned address got an id")
    except urllib.error.HTTPError as exc:
        assert exc.code == 403
    await django(n1, "from signalling.control import unban_address; "
                     "unban_address('127.0.0.1')")

    # the unban reaches n2 through the channel layer a moment later
    banned = {"type": "ERROR", "payload": {"msg": Errors.BANNED}}
    await (await rejoin(n2, "Y", still_held=lambda f: f == banned)).close()


async def test_live_peers_lists_the_key_on_every_node(cluster: Cluster) -> None:
    n1, n2 = cluster(2)
    a, b = await join(n1, "A"), await join(n2, "B")
    before = time.time()

    async def listed_with_since() -> None:
        out = await django(n1, "import json; from signalling.control import live_peers; "
                               "print(json.dumps(sorted([p.peer_id, p.node, "
                               "p.since and p.since.timestamp()] "
                               "for p in live_peers('peerjs'))))")
        peers = json.loads(out)
        assert [p[:2] for p in peers] == [["A", "node0"], ["B", "node1"]]
        # since: from each peer's open session row, whichever node holds it
        assert all(p[2] is not None and before - 60 < p[2] <= time.time() for p in peers), peers

    await eventually(listed_with_since)
    await a.close()
    await b.close()


async def test_key_deactivation_reaches_both_nodes_without_waiting_for_the_watcher(
        cluster: Cluster) -> None:
    # The watcher polls every 60 s here: only the control plane can be this fast.
    n1, n2 = cluster(2, KEY_WATCH_INTERVAL="60000", CONTROL_RECONCILE_INTERVAL="60000")
    key = manage(n1, "createkey", "doomed")
    a, b = await join(n1, "A", key=key), await join(n2, "B", key=key)
    other = await join(n2, "C")
    t0 = time.monotonic()
    await asyncio.to_thread(manage, n1, "deactivatekey", key)
    for ws in (a, b):
        assert await recv(ws, 10) == {"type": "ERROR",
                                      "payload": {"msg": Errors.KEY_DEACTIVATED}}
        assert await closed_with(ws) == 1008
    assert time.monotonic() - t0 < 10
    assert await nothing_arrives(other, 0.3)
    await other.close()
