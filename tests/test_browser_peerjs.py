"""PeerJS 1.5.5 in real Chromium against a real peerhub: data over WebRTC, and errors.

Every page is served from the fake origin ``https://peerhub.test/`` (see
``tests/browser_page.py``), so each request to peerhub is cross-origin and depends on
its CORS headers. Ids are unique per test because ``peerhub_server`` lives for the
whole session.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import pytest
from playwright.async_api import Browser, Page

from tests.browser_page import (
    connect,
    create_peer,
    incoming,
    open_page,
    received_bytes,
    send,
    send_bytes,
    wait_event,
    wait_events,
)
from tests.servers import LiveServer

pytestmark = pytest.mark.browser

StartServer = Callable[..., AbstractContextManager[LiveServer]]
PEERJS_ID = re.compile(r"^[A-Za-z0-9]+(?:[ _-][A-Za-z0-9]+)*$")
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def new_id(prefix: str) -> str:
    """A peer id no other test uses (PeerJS rule: letters, digits, single - or _)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def open_peer(browser: Browser, server: LiveServer, peer_id: str | None = None,
                    **extra: Any) -> tuple[Page, str]:
    """A new page with one Peer registered at ``server``; returns it and its id."""
    page = await open_page(browser)
    await create_peer(page, server, peer_id, **extra)
    opened = await wait_event(page, "peer", "open")
    return page, opened


async def open_pair(browser: Browser, server: LiveServer, serialization: str,
                    **options: Any) -> tuple[Page, Page, str, str]:
    """Pages A and B; A opens a data connection to B and both ends are open.

    Returns ``(a, b, a_conn, b_conn)``, the connection names in each page.
    """
    a, a_id = await open_peer(browser, server, new_id("a"))
    b, b_id = await open_peer(browser, server, new_id("b"))
    a_conn = await connect(a, "peer", b_id, serialization=serialization, **options)
    accepted = await wait_event(b, "peer", "connection")
    assert accepted == {"peer": a_id, "serialization": serialization}
    b_conn = incoming(a_id)
    await wait_event(a, a_conn, "open")
    await wait_event(b, b_conn, "open")
    return a, b, a_conn, b_conn


def values(received: list[dict[str, Any]]) -> list[Any]:
    """The plain (non-binary) values among recorded ``data`` events."""
    return [item["value"] for item in received if item["kind"] != "bytes"]


# --- data over real WebRTC -------------------------------------------------------------

async def test_binary_connection_carries_objects_and_300kb_arraybuffer_intact(
        browser: Browser, peerhub_server: LiveServer) -> None:
    a, b, a_conn, b_conn = await open_pair(browser, peerhub_server, "binary")
    blob = os.urandom(300 * 1024)
    message = {"text": "héllo", "n": 42, "list": [1, 2.5, True, None], "nested": {"k": "v"}}

    await send(a, a_conn, message)
    await send_bytes(a, a_conn, blob)
    received = await wait_events(b, b_conn, "data", 2, timeout=20_000)

    assert values(received) == [message]
    [got] = [received_bytes(item) for item in received if item["kind"] == "bytes"]
    assert len(got) == len(blob)
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(blob).hexdigest()

    await send(b, b_conn, ["reply", 7])
    assert values(await wait_events(a, a_conn, "data")) == [["reply", 7]]


async def test_json_connection_carries_objects_both_ways(
        browser: Browser, peerhub_server: LiveServer) -> None:
    a, b, a_conn, b_conn = await open_pair(browser, peerhub_server, "json", reliable=True)

    await send(a, a_conn, {"hello": "from a", "n": [1, 2, 3]})
    await send(a, a_conn, "second")
    assert values(await wait_events(b, b_conn, "data", 2)) == [
        {"hello": "from a", "n": [1, 2, 3]}, "second"]

    await send(b, b_conn, {"hello": "from b", "ok": True})
    assert values(await wait_events(a, a_conn, "data")) == [{"hello": "from b", "ok": True}]


async def test_raw_connection_carries_strings_and_bytes_unchanged(
        browser: Browser, peerhub_server: LiveServer) -> None:
    a, b, a_conn, b_conn = await open_pair(browser, peerhub_server, "raw", reliable=True)

    await send(a, a_conn, "plain text, ünïcode ✓")
    await send_bytes(a, a_conn, bytes(range(256)))
    first, second = await wait_events(b, b_conn, "data", 2)
    assert first == {"kind": "string", "value": "plain text, ünïcode ✓"}
    assert received_bytes(second) == bytes(range(256))

    await send(b, b_conn, "pong")
    assert await wait_events(a, a_conn, "data") == [{"kind": "string", "value": "pong"}]


async def test_offer_to_a_peer_not_yet_online_is_delivered_when_it_registers(
        browser: Browser, peerhub_server: LiveServer) -> None:
    a = await open_page(browser)
    offer_sent = asyncio.Event()
    a.on("websocket", lambda ws: ws.on(
        "framesent", lambda data: '"type":"OFFER"' in str(data) and offer_sent.set()))
    await create_peer(a, peerhub_server, new_id("early"))
    a_id = await wait_event(a, "peer", "open")
    b = await open_page(browser)
    b_id = new_id("late")

    a_conn = await connect(a, "peer", b_id, serialization="binary")
    await asyncio.wait_for(offer_sent.wait(), 10)
    await create_peer(b, peerhub_server, b_id)
    await wait_event(b, "peer", "open")
    assert (await wait_event(b, "peer", "connection"))["peer"] == a_id
    await wait_event(a, a_conn, "open")
    await send(a, a_conn, {"queued": True})
    assert values(await wait_events(b, incoming(a_id), "data")) == [{"queued": True}]
    assert await a.evaluate("ph.find('peer', 'error')") == []


# --- ids ------------------------------------------------------------------------------

async def test_peer_without_id_gets_a_server_id_that_others_can_reach(
        browser: Browser, peerhub_server: LiveServer) -> None:
    a, a_id = await open_peer(browser, peerhub_server)
    assert PEERJS_ID.match(a_id), a_id
    assert UUID4.match(a_id), a_id

    b, _ = await open_peer(browser, peerhub_server, new_id("b"))
    b_conn = await connect(b, "peer", a_id, serialization="raw")
    await wait_event(b, b_conn, "open")
    await send(b, b_conn, "found you")
    assert await wait_events(a, incoming(await b.evaluate("ph.peers.peer.id")), "data") == [
        {"kind": "string", "value": "found you"}]


async def test_disconnected_peer_reconnects_with_its_id(
        browser: Browser, peerhub_server: LiveServer) -> None:
    page, peer_id = await open_peer(browser, peerhub_server, new_id("re"))
    await page.evaluate("ph.peers.peer.disconnect()")
    await wait_event(page, "peer", "disconnected")
    await page.evaluate("ph.peers.peer.reconnect()")
    assert await wait_events(page, "peer", "open", 2) == [peer_id, peer_id]
    assert await page.evaluate("ph.find('peer', 'error')") == []


# --- errors, as peer.on('error') reports them -----------------------------------------

async def test_id_held_by_another_token_is_unavailable_id(
        browser: Browser, peerhub_server: LiveServer) -> None:
    taken = new_id("taken")
    await open_peer(browser, peerhub_server, taken)

    second = await open_page(browser)
    await create_peer(second, peerhub_server, taken)
    error = await wait_event(second, "peer", "error")
    assert error == {"type": "unavailable-id", "message": f'ID "{taken}" is taken'}
    assert await second.evaluate("ph.find('peer', 'open').length") == 0


async def test_malformed_id_is_invalid_id_and_never_reaches_the_server(
        browser: Browser, peerhub_server: LiveServer) -> None:
    page = await open_page(browser)
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))

    await create_peer(page, peerhub_server, "bad id!")
    error = await wait_event(page, "peer", "error")
    assert error == {"type": "invalid-id", "message": 'ID "bad id!" is invalid'}
    assert sockets == []


async def test_unknown_key_is_invalid_key(browser: Browser, peerhub_server: LiveServer) -> None:
    page = await open_page(browser)
    await create_peer(page, peerhub_server, new_id("k"), key="nosuchkey")
    error = await wait_event(page, "peer", "error")
    assert error == {"type": "invalid-key", "message": 'API KEY "nosuchkey" is invalid'}
    assert await page.evaluate("ph.find('peer', 'open').length") == 0


async def test_connecting_to_an_id_nobody_holds_is_peer_unavailable(
        browser: Browser, start_server: StartServer) -> None:
    with start_server(EXPIRE_TIMEOUT="1000", CLEANUP_INTERVAL="200") as server:
        page, _ = await open_peer(browser, server, new_id("a"))
        nobody = new_id("nobody")
        await connect(page, "peer", nobody, serialization="binary")
        error = await wait_event(page, "peer", "error")
        assert error == {"type": "peer-unavailable",
                         "message": f"Could not connect to peer {nobody}"}


async def test_concurrent_limit_is_a_server_error_until_a_slot_frees(
        browser: Browser, start_server: StartServer) -> None:
    with start_server(CONCURRENT_LIMIT="1") as server:
        first, _ = await open_peer(browser, server, new_id("first"))

        second = await open_page(browser)
        await create_peer(second, server, new_id("second"))
        error = await wait_event(second, "peer", "error")
        assert error == {"type": "server-error",
                         "message": "Server has reached its concurrent user limit"}
        assert await second.evaluate("ph.find('peer', 'open').length") == 0

        await first.evaluate("ph.peers.peer.destroy()")
        await wait_event(first, "peer", "close")
        third = await open_page(browser)
        await create_peer(third, server, new_id("third"))
        await wait_event(third, "peer", "open")
