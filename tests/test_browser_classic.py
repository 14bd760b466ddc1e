"""The classic PeerJS 0.3.14 client in real Chromium against a real peerhub.

0.3.x starts its websocket and an XHR stream (``POST {key}/{id}/{token}/id``) together
and, while the websocket is not open, sends signalling with ``POST .../offer`` and
friends. peerhub serves both transports; these tests drive the real client through
them, and check that a 0.3.14 peer and a 1.5.5 peer can talk.
"""

from __future__ import annotations

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
    events_of,
    hold_websockets,
    incoming,
    open_page,
    record_responses,
    release_websockets,
    send,
    wait_event,
)
from tests.servers import LiveServer

StartServer = Callable[..., AbstractContextManager[LiveServer]]

pytestmark = pytest.mark.browser
PEERJS_ID = re.compile(r"^[A-Za-z0-9]+(?:[ _-][A-Za-z0-9]+)*$")


def new_id(prefix: str) -> str:
    """A peer id no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def open_peer(browser: Browser, server: LiveServer, peer_id: str,
                    script: str = "classic") -> Page:
    """A new page whose Peer (``script``'s client) has opened as ``peer_id``."""
    page = await open_page(browser, script)
    await create_peer(page, server, peer_id)
    assert await wait_event(page, "peer", "open") == peer_id
    return page


async def exchange(a: Page, a_conn: str, b: Page, b_conn: str,
                   there: Any, back: Any) -> None:
    """Open both ends, send ``there`` from a to b and ``back`` from b to a."""
    await wait_event(a, a_conn, "open")
    await wait_event(b, b_conn, "open")
    await send(a, a_conn, there)
    assert await wait_event(b, b_conn, "data") == {"kind": kind(there), "value": there}
    await send(b, b_conn, back)
    assert await wait_event(a, a_conn, "data") == {"kind": kind(back), "value": back}


def kind(value: Any) -> str:
    """JavaScript's ``typeof`` for a JSON-like Python value."""
    return "string" if isinstance(value, str) else "object"


async def errors(page: Page, target: str = "peer") -> list[Any]:
    """Every error (and disconnect) ``target`` reported so far."""
    return [(event, value) for event, value in await events_of(page, target)
            if event in ("error", "disconnected", "close")]


@pytest.mark.parametrize(("serialization", "there", "back"), [
    ("binary", {"text": "héllo", "n": 42, "list": [1, 2.5, True, None]}, ["ack", 1]),
    ("json", {"text": "héllo", "nested": {"k": [1, 2]}}, {"ok": True}),
    ("none", "plain text over none", "and back"),
], ids=["binary", "json", "none"])
async def test_classic_peers_exchange_data(browser: Browser, peerhub_server: LiveServer,
                                           serialization: str, there: Any,
                                           back: Any) -> None:
    a_id, b_id = new_id("a"), new_id("b")
    a = await open_peer(browser, peerhub_server, a_id)
    b = await open_peer(browser, peerhub_server, b_id)

    a_conn = await connect(a, "peer", b_id, serialization=serialization)
    assert await wait_event(b, "peer", "connection") == {"peer": a_id,
                                                         "serialization": serialization}
    await exchange(a, a_conn, b, incoming(a_id), there, back)
    assert await errors(a) == []
    assert await errors(b) == []


async def test_classic_peer_signals_over_xhr_stream_and_post_until_its_websocket_opens(
        browser: Browser, peerhub_server: LiveServer) -> None:
    """With its websocket held back, a 0.3.14 peer registers through the XHR stream
    (OPEN arrives there), sends OFFER and CANDIDATEs with POST and gets the ANSWER on
    the stream. When the websocket then opens it takes over silently (no second OPEN),
    the stream can end, and signalling continues over the websocket."""
    a_id, b_id = new_id("a"), new_id("b")
    b = await open_peer(browser, peerhub_server, b_id)
    a = await open_page(browser, "classic")
    responses = record_responses(a)
    await hold_websockets(a)
    await create_peer(a, peerhub_server, a_id)
    assert await wait_event(a, "peer", "open") == a_id

    a_conn = await connect(a, "peer", b_id, serialization="json")
    await exchange(a, a_conn, b, incoming(a_id), {"via": "http"}, {"ok": "stream"})
    prefix = f"{peerhub_server.path}peerjs/{a_id}/"
    posted = {(method, path.removeprefix(prefix).split("/", 1)[-1], status)
              for method, path, status in responses}
    assert ("POST", "id", 200) in posted
    assert ("POST", "offer", 200) in posted
    assert ("POST", "candidate", 200) in posted

    async with a.expect_websocket() as opened:
        await release_websockets(a)
    assert f"id={a_id}" in (await opened.value).url
    await a.wait_for_function("ph.peers.peer.socket._wsOpen()")
    # The client drops its stream 5 s after the websocket opens; do it now. peerhub must
    # not free the id, which the websocket holds now.
    async with a.expect_event("requestfailed", lambda r: "/id?i=" in r.url):
        await a.evaluate("ph.peers.peer.socket._http.abort()")

    # B calls A now: the OFFER reaches A over its websocket.
    b_conn = await connect(b, "peer", a_id, name="second", serialization="none")
    await wait_event(a, "peer", "connection")
    await exchange(b, b_conn, a, incoming(b_id), "over the websocket", "yes")
    assert await a.evaluate("ph.find('peer', 'open').length") == 1
    assert await errors(a) == []


async def test_classic_peer_without_id_gets_one_from_the_server(
        browser: Browser, peerhub_server: LiveServer) -> None:
    page = await open_page(browser, "classic")
    await create_peer(page, peerhub_server)
    peer_id = await wait_event(page, "peer", "open")
    assert PEERJS_ID.match(peer_id), peer_id
    assert await page.evaluate("ph.peers.peer.id") == peer_id


async def test_classic_peer_asking_for_a_held_id_gets_unavailable_id(
        browser: Browser, peerhub_server: LiveServer) -> None:
    taken = new_id("taken")
    await open_peer(browser, peerhub_server, taken)
    page = await open_page(browser, "classic")
    await create_peer(page, peerhub_server, taken)
    assert await wait_event(page, "peer", "error") == {
        "type": "unavailable-id", "message": f"ID `{taken}` is taken"}
    assert await page.evaluate("ph.find('peer', 'open').length") == 0


async def test_classic_peer_with_unknown_key_gets_invalid_key(
        browser: Browser, peerhub_server: LiveServer) -> None:
    page = await open_page(browser, "classic")
    await create_peer(page, peerhub_server, new_id("k"), key="nosuchkey")
    assert await wait_event(page, "peer", "error") == {
        "type": "invalid-key", "message": 'API KEY "nosuchkey" is invalid'}
    assert await page.evaluate("ph.find('peer', 'open').length") == 0


# --- 0.3.14 <-> 1.5.5 -----------------------------------------------------------------
# Only strings without a serializer are common ground: 1.5.5 has no "none" serializer
# (it throws on such an OFFER), its "json" sends binary frames where 0.3.x sends text,
# and BinaryPack differs between the two for some strings. 0.3.14 passes any
# serialization name it does not know through unchanged, so "raw" works both ways.

async def test_peerjs_15_connects_to_classic_peer_with_raw_strings(
        browser: Browser, peerhub_server: LiveServer) -> None:
    new_id_, old_id = new_id("new"), new_id("old")
    new = await open_peer(browser, peerhub_server, new_id_, "peerjs")
    old = await open_peer(browser, peerhub_server, old_id, "classic")

    conn = await connect(new, "peer", old_id, serialization="raw", reliable=True)
    assert await wait_event(old, "peer", "connection") == {"peer": new_id_,
                                                           "serialization": "raw"}
    await exchange(new, conn, old, incoming(new_id_), "hello from 1.5.5", "hi from 0.3.14")
    assert await errors(new) == []
    assert await errors(old) == []


async def test_classic_peer_connects_to_peerjs_15_with_raw_strings(
        browser: Browser, peerhub_server: LiveServer) -> None:
    new_id_, old_id = new_id("new"), new_id("old")
    new = await open_peer(browser, peerhub_server, new_id_, "peerjs")
    old = await open_peer(browser, peerhub_server, old_id, "classic")

    conn = await connect(old, "peer", new_id_, serialization="raw")
    assert await wait_event(new, "peer", "connection") == {"peer": old_id,
                                                           "serialization": "raw"}
    await exchange(old, conn, new, incoming(old_id), "hello from 0.3.14", "hi from 1.5.5")
    assert await errors(new) == []
    assert await errors(old) == []


async def test_mount_path_serves_both_clients_http_routes(
        browser: Browser, start_server: StartServer) -> None:
    """Under PEERHUB_PATH=/myapp: a 1.5.5 peer gets its id from /myapp/peerjs/id, and a
    0.3.14 peer (websocket held back) uses /myapp/peerjs/{id}/{token}/id and .../offer."""
    with start_server(PEERHUB_PATH="/myapp") as server:
        assert server.path == "/myapp/"
        new = await open_page(browser, "peerjs")
        await create_peer(new, server)
        new_peer = await wait_event(new, "peer", "open")

        old_peer = new_id("old")
        old = await open_page(browser, "classic")
        responses = record_responses(old)
        await hold_websockets(old)
        await create_peer(old, server, old_peer)
        assert await wait_event(old, "peer", "open") == old_peer
        conn = await connect(old, "peer", new_peer, serialization="raw")
        await exchange(old, conn, new, incoming(old_peer), "under /myapp", "ok")

        token = await old.evaluate("ph.peers.peer.options.token")
        assert ("POST", f"/myapp/peerjs/{old_peer}/{token}/id", 200) in responses
        assert ("POST", f"/myapp/peerjs/{old_peer}/{token}/offer", 200) in responses
