"""Real Chromium drives the admin on a real daphne; a real PeerJS 1.5.5 peer is the tenant.

A staff user logs in (CSRF and the admin's static files under daphne), creates a key,
sees the key's live peer on the dashboard, deactivates the key, and watches the browser
peer get the server's error and lose its connection.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from playwright.async_api import Browser, Page

from signalling.protocol import Errors
from tests.browser_page import ORIGIN, create_peer, open_page, wait_event
from tests.servers import LiveServer, manage
from tests.test_apikeys_helpers import StartServer, close_reasons, make_keys, query
from tests.waiting import until
from tests.wsclient import closed_with, join, recv

pytestmark = pytest.mark.browser

PASSWORD = "correct-horse-battery-9"
KEY = "browser-tenant"


async def admin_session(browser: Browser, server: LiveServer) -> tuple[Page, list[Any]]:
    """A logged-in admin page; also returns the (url, status) of each static file."""
    await asyncio.to_thread(manage, server, "createsuperuser", "--noinput", "--username",
                            "boss", "--email", "boss@example.test")
    context = await browser.new_context()
    page = await context.new_page()
    assets: list[tuple[str, int]] = []
    page.on("response", lambda r: assets.append((r.url, r.status)) if "/static/" in r.url
            else None)
    await page.goto(f"{base(server)}/admin/")
    assert "/admin/login/" in page.url
    await page.fill("#id_username", "boss")
    await page.fill("#id_password", PASSWORD)
    await page.click("input[type=submit]")
    await page.wait_for_url(f"{base(server)}/admin/")
    return page, assets


def base(server: LiveServer) -> str:
    return f"http://{server.host}:{server.port}"


async def dashboard_live(admin: Page, server: LiveServer, key: str) -> str:
    await admin.goto(f"{base(server)}/dashboard/")
    cell = await admin.text_content(f'#key-summary tr[data-key="{key}"] td.live .count')
    return (cell or "").strip()


async def test_staff_creates_a_key_sees_its_peer_live_and_deactivating_disconnects_it(
        browser: Browser, start_server: StartServer) -> None:
    with start_server(DJANGO_SUPERUSER_PASSWORD=PASSWORD, KEY_WATCH_INTERVAL="500") as server:
        admin, assets = await admin_session(browser, server)
        assert "Site administration" in await admin.title()
        assert any(url.endswith("/static/admin/css/base.css") for url, _ in assets)
        assert all(status == 200 for _, status in assets), assets

        await admin.click("#peerhub-dashboard-link a")
        await admin.wait_for_url(f"{base(server)}/dashboard/")
        assert await admin.locator("svg.peerhub-chart").count() >= 2

        await admin.goto(f"{base(server)}/admin/apikeys/apikey/add/")
        await admin.fill("#id_name", "Browser tenant")
        await admin.fill("#id_key", KEY)
        await admin.fill("#id_concurrent_limit", "5")
        await admin.fill("#id_allowed_origins", ORIGIN + "/")
        await admin.click("input[name=_save]")
        await admin.wait_for_url(f"{base(server)}/admin/apikeys/apikey/")
        assert query(server, "SELECT name, allowed_origins, active FROM apikeys_apikey "
                     "WHERE key = ?", KEY) == [("Browser tenant", ORIGIN, 1)]

        peer_page = await open_page(browser)
        await create_peer(peer_page, server, "dash-peer", key=KEY)
        assert await wait_event(peer_page, "peer", "open") == "dash-peer"
        assert await dashboard_live(admin, server, KEY) == "1"
        assert "dash-peer" not in await admin.content()  # ids are not shown on it

        await admin.goto(f"{base(server)}/admin/apikeys/apikey/?q={KEY}")
        assert (await admin.text_content("td.field-live") or "").strip() == "1 / 5"
        await admin.check("input.action-select")
        await admin.select_option("select[name=action]", "deactivate_keys")
        await admin.click("button[name=index]")
        # First the confirmation page with the key's live peers; nothing changed yet.
        live = await admin.text_content("#peerhub-live-peers") or ""
        assert "dash-peer" in live and "1 live peer" in " ".join(live.split())
        assert query(server, "SELECT active FROM apikeys_apikey WHERE key = ?", KEY) == [(1,)]
        await admin.click("input[type=submit][value='Yes, deactivate']")
        assert "Deactivated 1 key(s)" in (await admin.text_content("ul.messagelist") or "")

        error = await wait_event(peer_page, "peer", "error", timeout=10_000)
        assert error == {"type": "server-error", "message": Errors.KEY_DEACTIVATED}
        await wait_event(peer_page, "peer", "disconnected")
        await until(lambda: close_reasons(server, KEY) == {"dash-peer": "key deactivated"}, in_thread=True)
        assert await dashboard_live(admin, server, KEY) == "0"
        state = await admin.text_content(f'#key-summary tr[data-key="{KEY}"] .state')
        assert (state or "").strip() == "(inactive)"

        again = await open_page(browser)
        await create_peer(again, server, "dash-peer-2", key=KEY)
        refused = await wait_event(again, "peer", "error")
        assert refused["type"] == "invalid-key"


async def test_unticking_active_in_the_change_form_disconnects_and_reactivating_readmits(
        browser: Browser, start_server: StartServer) -> None:
    with start_server(DJANGO_SUPERUSER_PASSWORD=PASSWORD, KEY_WATCH_INTERVAL="500") as server:
        make_keys(server, {"name": "edited", "key": "edited"},
                  {"name": "neighbour", "key": "neighbour"})
        admin, _ = await admin_session(browser, server)
        peer = await join(server, "victim", key="edited")
        neighbour = await join(server, "victim", key="neighbour")
        (pk,) = query(server, "SELECT id FROM apikeys_apikey WHERE key = 'edited'")[0]
        await admin.goto(f"{base(server)}/admin/apikeys/apikey/{pk}/change/")
        await admin.uncheck("#id_active")
        await admin.click("input[name=_save]")
        await admin.wait_for_url(f"{base(server)}/admin/apikeys/apikey/")
        assert await recv(peer) == {"type": "ERROR",
                                    "payload": {"msg": Errors.KEY_DEACTIVATED}}
        assert await closed_with(peer) == 1008
        await admin.goto(f"{base(server)}/admin/apikeys/apikey/?active__exact=0")
        await admin.check("input.action-select")
        await admin.select_option("select[name=action]", "activate_keys")
        await admin.click("button[name=index]")
        back = await join(server, "victim", key="edited")
        await back.close()
        await neighbour.send('{"type": "CANDIDATE", "dst": "victim", "payload": 1}')
        assert (await recv(neighbour))["payload"] == 1  # the other key never noticed
        await neighbour.close()


async def test_session_admin_is_read_only_and_filters_live_closed_and_by_key(
        browser: Browser, start_server: StartServer) -> None:
    with start_server(DJANGO_SUPERUSER_PASSWORD=PASSWORD) as server:
        make_keys(server, {"name": "Sessions tenant", "key": "sess"})
        live = await join(server, "still-here", key="sess")
        gone = await join(server, "went-away", key="sess")
        await gone.close()
        await until(lambda: close_reasons(server, "sess") == {
            "still-here": "", "went-away": "closed by client"}, in_thread=True)
        admin, _ = await admin_session(browser, server)
        url = f"{base(server)}/admin/signalling/peersession/"

        async def peers_listed(query_string: str) -> set[str]:
            await admin.goto(f"{url}?{query_string}")
            return {(t or "").strip() for t in
                    await admin.locator("td.field-peer_id, th.field-peer_id").all_text_contents()}

        assert await peers_listed("state=live&key=sess") == {"still-here"}
        assert await peers_listed("state=closed&key=sess") == {"went-away"}
        assert await peers_listed("q=went") == {"went-away"}
        assert await peers_listed("key=peerjs") == set()
        await admin.goto(f"{url}?key=sess")
        assert await admin.locator("text=Sessions tenant (sess)").count() == 1
        assert await admin.locator(".object-tools a.addlink").count() == 0
        assert await admin.locator("select[name=action]").count() == 0
        await live.close()
