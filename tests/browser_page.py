"""A Chromium page on a fake origin that loads a PeerJS client, plus small typed helpers.

The page lives at ``https://peerhub.test/``; Playwright serves it (and the PeerJS script)
from local files through ``context.route``, so nothing but peerhub is on the network and
every request the client makes to peerhub on 127.0.0.1 is a real cross-origin request.
The origin is https because Chromium's Local Network Access checks block a public
non-secure page from reaching 127.0.0.1 at all; a secure one may once the permission is
granted. Plain http/ws to 127.0.0.1 is allowed from it (loopback is trustworthy), so the
peers are told ``secure: false``.

In the page, ``window.ph`` records every event of the peers and data connections it
watches as ``{target, event, value}``; the Python helpers wait on that log, so an event
that fired before anyone waited for it is never missed.
"""

from __future__ import annotations

import base64
from typing import Any

from playwright.async_api import Browser, Page, Response, Route
from playwright.async_api import TimeoutError as PlaywrightTimeout

from tests.servers import ROOT, LiveServer

ORIGIN = "https://peerhub.test"
SCRIPTS = {
    "peerjs": ROOT / "node_modules/peerjs/dist/peerjs.min.js",       # PeerJS 1.5.5
    "classic": ROOT / ".vendor/peerjs-0.3.14/peer.js",               # PeerJS 0.3.14
}
TIMEOUT_MS = 10_000

# The in-page recorder. ``value`` must survive Playwright's serialisation, so binary
# data is described as base64 and errors as ``{type, message}``.
HARNESS_JS = """
window.ph = {
  peers: {}, conns: {}, events: [],
  note(target, event, value) { this.events.push({target, event, value}); },
  find(target, event) { return this.events.filter(e => e.target === target && e.event === event); },
  describe(data) {
    let bytes = null;
    if (data instanceof ArrayBuffer) bytes = new Uint8Array(data);
    else if (ArrayBuffer.isView(data)) bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (bytes === null) return {kind: typeof data, value: data};
    let text = '';
    for (let i = 0; i < bytes.length; i += 0x8000) {
      text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return {kind: 'bytes', base64: btoa(text)};
  },
  fromBase64(b64) { return Uint8Array.from(atob(b64), c => c.charCodeAt(0)).buffer; },
  watchPeer(name, peer) {
    this.peers[name] = peer;
    peer.on('open', id => this.note(name, 'open', id));
    peer.on('error', err => this.note(name, 'error', {type: err.type, message: String(err.message)}));
    peer.on('disconnected', () => this.note(name, 'disconnected', null));
    peer.on('close', () => this.note(name, 'close', null));
    peer.on('connection', conn => {
      this.watchConn(name + '<' + conn.peer, conn);
      this.note(name, 'connection', {peer: conn.peer, serialization: conn.serialization});
    });
  },
  watchConn(name, conn) {
    this.conns[name] = conn;
    conn.on('open', () => this.note(name, 'open', null));
    conn.on('data', data => this.note(name, 'data', this.describe(data)));
    conn.on('error', err => this.note(name, 'error', {type: err.type, message: String(err.message)}));
    conn.on('close', () => this.note(name, 'close', null));
  },
  // Make new WebSockets stay CONNECTING until releaseWebSockets(): a slow websocket.
  held: [],
  holdWebSockets() {
    const held = this.held;
    window.WebSocket = function HeldWebSocket(url) {
      const fake = {url, readyState: 0, real: null,
                    send(data) { this.real.send(data); },
                    close() { if (this.real) this.real.close(); else this.readyState = 3; }};
      held.push(fake);
      return fake;
    };
  },
  releaseWebSockets() {
    window.WebSocket = NativeWebSocket;
    for (const fake of this.held.splice(0)) {
      if (fake.readyState === 3) continue;
      const ws = fake.real = new NativeWebSocket(fake.url);
      ws.onopen = e => { fake.readyState = 1; fake.onopen && fake.onopen(e); };
      ws.onmessage = e => fake.onmessage && fake.onmessage(e);
      ws.onerror = e => fake.onerror && fake.onerror(e);
      ws.onclose = e => { fake.readyState = 3; fake.onclose && fake.onclose(e); };
    }
  },
};
const NativeWebSocket = window.WebSocket;
"""

PAGE_HTML = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>peerhub browser test</title>
<script src="/peer.js"></script>
<script>{HARNESS_JS}</script>
</head><body>peerhub browser test</body></html>
"""


async def open_page(browser: Browser, script: str = "peerjs") -> Page:
    """A fresh context and page at ``https://peerhub.test/`` with ``script`` loaded.

    ``script`` is ``"peerjs"`` (1.5.5) or ``"classic"`` (0.3.14); either defines ``Peer``.
    """
    source = SCRIPTS[script]
    if not source.exists():
        from tests.conftest import missing

        missing(f"{source.relative_to(ROOT)} is missing (make test-setup)")
    files = {"/": (PAGE_HTML.encode(), "text/html; charset=utf-8"),
             "/peer.js": (source.read_bytes(), "text/javascript; charset=utf-8")}

    async def serve(route: Route) -> None:
        path = "/" + route.request.url.removeprefix(ORIGIN).lstrip("/").split("?")[0]
        if path not in files:
            await route.fulfill(status=404, body="not found")
            return
        body, content_type = files[path]
        await route.fulfill(status=200, body=body, content_type=content_type)

    context = await browser.new_context()
    # A public origin reaching 127.0.0.1 needs Chromium's Local Network Access permission
    # (what a user grants at a prompt); only a secure context may hold it.
    await context.grant_permissions(["local-network-access"], origin=ORIGIN)
    await context.route(f"{ORIGIN}/**", serve)
    page = await context.new_page()
    await page.goto(f"{ORIGIN}/")
    await page.wait_for_function("typeof Peer === 'function' && typeof ph === 'object'")
    return page


def peer_options(server: LiveServer, key: str = "peerjs", **extra: Any) -> dict[str, Any]:
    """Peer options pointing at ``server``: plain http/ws, no ICE servers, no logging."""
    return {"host": server.host, "port": server.port, "path": server.path, "key": key,
            "secure": False, "config": {"iceServers": []}, "debug": 0, **extra}


async def create_peer(page: Page, server: LiveServer, peer_id: str | None = None, *,
                      name: str = "peer", key: str = "peerjs", **extra: Any) -> None:
    """``new Peer(peer_id, options)`` in ``page``, recorded under ``name``."""
    await page.evaluate(
        "([name, id, options]) => ph.watchPeer(name, new Peer(id ?? undefined, options))",
        [name, peer_id, peer_options(server, key, **extra)],
    )


async def connect(page: Page, peer: str, remote_id: str, *, name: str = "out",
                  **options: Any) -> str:
    """``peers[peer].connect(remote_id, options)``, recorded under ``name``."""
    await page.evaluate(
        "([peer, remote, name, options]) =>"
        " ph.watchConn(name, ph.peers[peer].connect(remote, options))",
        [peer, remote_id, name, options],
    )
    return name


def incoming(remote_id: str, peer: str = "peer") -> str:
    """The name under which ``peer`` records the connection ``remote_id`` opened to it."""
    return f"{peer}<{remote_id}"


async def wait_events(page: Page, target: str, event: str, count: int = 1,
                      timeout: float = TIMEOUT_MS) -> list[Any]:
    """Wait until ``target`` has emitted ``event`` ``count`` times; return the values."""
    try:
        await page.wait_for_function(
            "([target, event, count]) => ph.find(target, event).length >= count",
            arg=[target, event, count], timeout=timeout,
        )
    except PlaywrightTimeout as exc:
        log = await page.evaluate("ph.events.map(e => [e.target, e.event, e.value])")
        raise AssertionError(f"{target!r} did not emit {event!r} x{count}; events: {log}") \
            from exc
    values: list[Any] = await page.evaluate(
        "([target, event]) => ph.find(target, event).map(e => e.value)", [target, event])
    return values[:count]


async def wait_event(page: Page, target: str, event: str,
                     timeout: float = TIMEOUT_MS) -> Any:
    """Wait for ``target``'s first ``event``; return its value."""
    return (await wait_events(page, target, event, 1, timeout))[0]


async def events_of(page: Page, target: str) -> list[tuple[str, Any]]:
    """Every ``(event, value)`` ``target`` emitted so far."""
    found: list[list[Any]] = await page.evaluate(
        "(target) => ph.events.filter(e => e.target === target).map(e => [e.event, e.value])",
        target)
    return [(event, value) for event, value in found]


async def send(page: Page, conn: str, value: Any) -> None:
    """``conns[conn].send(value)`` for a JSON-like value."""
    await page.evaluate("([conn, value]) => ph.conns[conn].send(value)", [conn, value])


async def send_bytes(page: Page, conn: str, data: bytes) -> None:
    """``conns[conn].send(arrayBuffer)`` with exactly ``data``."""
    await page.evaluate("([conn, b64]) => ph.conns[conn].send(ph.fromBase64(b64))",
                        [conn, base64.b64encode(data).decode()])


def received_bytes(value: Any) -> bytes:
    """The bytes of a recorded ``data`` value that was binary."""
    assert isinstance(value, dict) and value.get("kind") == "bytes", value
    return base64.b64decode(value["base64"])


async def hold_websockets(page: Page) -> None:
    """From now on the page's new WebSockets stay CONNECTING until released."""
    await page.evaluate("ph.holdWebSockets()")


async def release_websockets(page: Page) -> None:
    """Really open every held WebSocket (and stop holding new ones)."""
    await page.evaluate("ph.releaseWebSockets()")


def record_responses(page: Page) -> list[tuple[str, str, int]]:
    """A list that fills with ``(method, path, status)`` of each response the page gets
    from anything but the page's own origin."""
    seen: list[tuple[str, str, int]] = []

    def note(response: Response) -> None:
        if not response.url.startswith(ORIGIN):
            path = "/" + response.url.split("/", 3)[3].split("?")[0]
            seen.append((response.request.method, path, response.status))

    page.on("response", note)
    return seen
