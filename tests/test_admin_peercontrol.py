"""Kick and ban from the admin's live-peers page, over real HTTP with CSRF, on real
servers: one node on the in-memory channel layer, and a two-node cluster on Redis.

Banned addresses are 127.0.0.2-style loopback ones (the test's peers bind to them), so
the admin session on 127.0.0.1 is never banned itself.
"""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Callable
from typing import Any

import pytest

from signalling.protocol import Errors
from tests.adminhttp import AdminHTTP
from tests.servers import LiveServer, manage
from tests.test_apikeys_helpers import StartServer, query
from tests.waiting import until
from tests.wsclient import closed_with, join, nothing_arrives, open_socket, recv

PASSWORD = "correct-horse-battery-9"
Cluster = Callable[..., list[LiveServer]]


async def admin_user(server: LiveServer) -> AdminHTTP:
    """A superuser logged in to ``server``'s admin over HTTP."""
    await asyncio.to_thread(manage, server, "createsuperuser", "--noinput", "--username",
                            "boss", "--email", "boss@example.test")
    client = AdminHTTP(server)
    assert await asyncio.to_thread(client.login, "boss", PASSWORD) == 302
    return client


async def key_pk(client: AdminHTTP, key: str = "peerjs") -> str:
    """The admin id of ``key``, read from the key list."""
    status, _, page = await asyncio.to_thread(
        client.request, "GET", f"/admin/apikeys/apikey/?q={key}")
    assert status == 200, page[:500]
    found = re.search(r'href="/admin/apikeys/apikey/(\d+)/live/"', page)
    assert found, "the key list links no live-peers page"
    return found.group(1)


async def page(client: AdminHTTP, pk: str) -> str:
    status, _, body = await asyncio.to_thread(
        client.request, "GET", f"/admin/apikeys/apikey/{pk}/live/")
    assert status == 200, body[:500]
    return body


async def post(client: AdminHTTP, pk: str, **form: Any) -> str:
    """POST an action to the page; follow the redirect back and return that page."""
    url = f"/admin/apikeys/apikey/{pk}/live/"
    status, headers, body = await asyncio.to_thread(client.request, "POST", url, form)
    assert status == 302, body[:2000]
    assert headers["Location"] == url
    return await page(client, pk)


def live_rows(body: str) -> dict[str, str]:
    """``{peer_id: node}`` of the page's live-peers table."""
    return dict(re.findall(r'<tr data-peer="([^"]+)"><td><code>[^<]*</code></td><td>([^<]*)'
                           r'</td>', body))


def ban_rows(body: str) -> list[str]:
    return re.findall(r'<tr data-address="([^"]+)">', body)


def message_list(body: str) -> list[str]:
    return [html.unescape(m) for m in re.findall(r'<li class="[a-z]+">(.*?)</li>', body)]


async def admitted(server: LiveServer, address: str, peer_id: str) -> bool:
    """Whether a socket from ``address`` gets OPEN (True) or the ban (False)."""
    ws = await open_socket(server, peer_id, local_addr=(address, 0))
    first = await recv(ws, 10)
    if first == {"type": "OPEN"}:
        await ws.close()
        return True
    assert first == {"type": "ERROR", "payload": {"msg": Errors.BANNED}}
    assert await closed_with(ws) == 1008
    return False


async def wait_admitted(server: LiveServer, address: str, want: bool) -> None:
    probes = iter(range(1000))

    async def as_wanted() -> bool:
        return await admitted(server, address, f"probe{next(probes)}") == want

    await until(as_wanted, interval=0.2, what=f"{address} admitted is {want}")


async def test_one_node_admin_kicks_a_peer_and_bans_then_unbans_an_address(
        start_server: StartServer) -> None:
    with start_server(DJANGO_SUPERUSER_PASSWORD=PASSWORD) as server:
        admin = await admin_user(server)
        pk = await key_pk(admin)
        victim = await join(server, "victim")
        bystander = await join(server, "bystander")
        body = await page(admin, pk)
        assert live_rows(body).keys() == {"victim", "bystander"}
        # One node knows when each peer connected.
        assert re.search(r'<tr data-peer="victim">.*?<td>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d</td>',
                         body, re.S), body

        body = await post(admin, pk, action="kick", peer_id="victim")
        assert await recv(victim, 10) == {"type": "ERROR",
                                          "payload": {"msg": Errors.KICKED}}
        assert await closed_with(victim) == 1008
        assert await nothing_arrives(bystander, 0.3)
        assert any(m.startswith("Kicked victim") for m in message_list(body)), body
        audit = query(server, "SELECT change_message FROM django_admin_log "
                              "WHERE object_id = ? ORDER BY id", pk)
        assert audit[-1][0] == "Kicked peer victim. From 127.0.0.1."

        # A peer from 127.0.0.2 is connected; the ban closes it and refuses it again.
        far = await open_socket(server, "far", local_addr=("127.0.0.2", 0))
        assert await recv(far, 10) == {"type": "OPEN"}
        body = await post(admin, pk, action="ban", address="127.0.0.2", minutes="5",
                          reason="abuse")
        assert ban_rows(body) == ["127.0.0.2"]
        assert "abuse" in body
        assert await recv(far, 10) == {"type": "ERROR", "payload": {"msg": Errors.BANNED}}
        assert await closed_with(far) == 1008
        assert not await admitted(server, "127.0.0.2", "again")
        assert await admitted(server, "127.0.0.3", "other-address")
        assert await nothing_arrives(bystander, 0.3)
        audit = query(server, "SELECT change_message FROM django_admin_log "
                              "WHERE object_id = ? ORDER BY id", pk)
        assert audit[-1][0] == ("Banned address 127.0.0.2 for 5 minute(s) (abuse). "
                                "From 127.0.0.1.")

        body = await post(admin, pk, action="unban", address="127.0.0.2")
        assert ban_rows(body) == []
        assert "Lifted the ban on 127.0.0.2." in message_list(body)
        await wait_admitted(server, "127.0.0.2", True)
        audit = query(server, "SELECT change_message FROM django_admin_log "
                              "WHERE object_id = ? ORDER BY id", pk)
        assert audit[-1][0] == "Lifted the ban on 127.0.0.2. From 127.0.0.1."
        await bystander.close()


async def test_bad_input_on_the_page_is_refused_clearly_and_changes_nothing(
        start_server: StartServer) -> None:
    with start_server(DJANGO_SUPERUSER_PASSWORD=PASSWORD) as server:
        admin = await admin_user(server)
        pk = await key_pk(admin)
        peer = await join(server, "stays")
        before = query(server, "SELECT count(*) FROM django_admin_log")
        url = f"/admin/apikeys/apikey/{pk}/live/"
        for form, error in [
            ({"address": "not-an-ip", "minutes": "5"}, "is not an IPv4 or IPv6 address"),
            ({"address": "127.0.0.1", "minutes": "5"}, "would lock you out"),
            ({"address": "127.0.0.9", "minutes": "0"}, "greater than or equal to 1"),
            ({"address": "127.0.0.9", "minutes": "99999999"}, "less than or equal to"),
        ]:
            status, _, body = await asyncio.to_thread(admin.request, "POST", url,
                                                      {"action": "ban", **form})
            assert status == 200 and error in html.unescape(body), (form, body[-3000:])
        body = await post(admin, pk, action="kick", peer_id="nobody")
        assert any("Peer nobody is not connected" in m for m in message_list(body)), message_list(body)
        assert ban_rows(body) == []
        assert query(server, "SELECT count(*) FROM django_admin_log") == before
        assert await nothing_arrives(peer, 0.3)

        # Without a login (and so without staff rights) nothing is done either.
        stranger = AdminHTTP(server)
        status, headers, _ = await asyncio.to_thread(
            stranger.request, "POST", url, {"action": "kick", "peer_id": "stays"})
        assert status == 302 and "/admin/login/" in headers["Location"]
        # And without the CSRF token the post is refused.
        status, _, _ = await asyncio.to_thread(admin.request, "POST", url, None)
        assert status == 403
        assert await nothing_arrives(peer, 0.3)
        await peer.close()


@pytest.mark.cluster
async def test_cluster_admin_on_node_one_kicks_and_bans_on_node_two(
        cluster: Cluster) -> None:
    n1, n2 = cluster(2, DJANGO_SUPERUSER_PASSWORD=PASSWORD)
    admin = await admin_user(n1)
    pk = await key_pk(admin)
    a = await join(n1, "A")
    b = await join(n2, "B")
    body = await page(admin, pk)
    assert live_rows(body) == {"A": "node0", "B": "node1"}

    body = await post(admin, pk, action="kick", peer_id="B")
    assert await recv(b, 10) == {"type": "ERROR", "payload": {"msg": Errors.KICKED}}
    assert await closed_with(b) == 1008
    assert await nothing_arrives(a, 0.3)

    far = await open_socket(n2, "far", local_addr=("127.0.0.2", 0))
    assert await recv(far, 10) == {"type": "OPEN"}
    body = await post(admin, pk, action="ban", address="127.0.0.2", minutes="5",
                      reason="")
    assert ban_rows(body) == ["127.0.0.2"]
    assert await recv(far, 10) == {"type": "ERROR", "payload": {"msg": Errors.BANNED}}
    assert await closed_with(far) == 1008
    assert not await admitted(n2, "127.0.0.2", "again")
    body = await post(admin, pk, action="unban", address="127.0.0.2")
    assert ban_rows(body) == []
    await wait_admitted(n2, "127.0.0.2", True)

    out = await asyncio.to_thread(
        manage, n1, "shell", "--no-imports", "-c",
        "from django.contrib.admin.models import LogEntry; "
        f"[print(e.change_message) for e in LogEntry.objects.filter(object_id='{pk}')"
        ".order_by('id')]")
    assert out.splitlines()[-3:] == [
        "Kicked peer B. From 127.0.0.1.",
        "Banned address 127.0.0.2 for 5 minute(s). From 127.0.0.1.",
        "Lifted the ban on 127.0.0.2. From 127.0.0.1."]
    await a.close()
