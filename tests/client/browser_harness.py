"""A Chromium page with PeerJS 1.5.5 (and its MsgPack serializer) for the client tests.

The page lives at ``https://peerclient.test/`` (a secure context, needed for the camera
and for Chromium's Local Network Access permission), served by Playwright from node_modules, so
the only real network peers are the PeerServer and the Python bot on 127.0.0.1.

``MsgPackPeer`` is only exported by PeerJS's bundler build (which has bare imports a
page cannot load), so the page defines the same two-line subclass the bundle ships:
a ``Peer`` whose serializers are ``{MsgPack, default: MsgPack}``, using the shipped
``MsgPack`` class from ``serializer.msgpack.mjs``.
"""

from __future__ import annotations

from typing import Any

from playwright.async_api import Browser, Page, Route

from tests.conftest import missing
from tests.servers import ROOT

ORIGIN = "https://peerclient.test"
FILES = {
    "/peer.js": ROOT / "node_modules/peerjs/dist/peerjs.min.js",
    "/msgpack.mjs": ROOT / "node_modules/peerjs/dist/serializer.msgpack.mjs",
}

PAGE_JS = r"""
window.t = {
  view(x) {
    if (x instanceof ArrayBuffer) return new Uint8Array(x);
    if (ArrayBuffer.isView(x)) return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
    return null;
  },
  eq(a, b) {
    const va = t.view(a), vb = t.view(b);
    if (va || vb) {
      if (!va || !vb || va.length !== vb.length) return false;
      for (let i = 0; i < va.length; i++) if (va[i] !== vb[i]) return false;
      return true;
    }
    if (Array.isArray(a) || Array.isArray(b)) {
      return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => t.eq(x, b[i]));
    }
    if (a && b && typeof a === 'object' && typeof b === 'object') {
      const ka = Object.keys(a), kb = Object.keys(b);
      return ka.length === kb.length && ka.every(k => t.eq(a[k], b[k]));
    }
    return a === b;
  },
  kind(x) {
    if (x instanceof ArrayBuffer) return 'ArrayBuffer';
    if (ArrayBuffer.isView(x)) return x.constructor.name;
    if (x === null) return 'null';
    return Array.isArray(x) ? 'array' : typeof x;
  },
  pattern(n, seed) {
    const out = new Uint8Array(n);
    let s = seed >>> 0;
    for (let i = 0; i < n; i++) { s = (s * 1103515245 + 12345) >>> 0; out[i] = s >>> 24; }
    return out;
  },
  async newPeer(id, options, msgpack) {
    let Cls = Peer;
    if (msgpack) {
      const { MsgPack } = await import('/msgpack.mjs');
      Cls = class MsgPackPeer extends Peer {
        constructor(...args) { super(...args); this._serializers = { MsgPack, default: MsgPack }; }
      };
    }
    const peer = new Cls(id || undefined, options);
    window.peer = peer;
    window.received = [];
    window.errors = [];
    peer.on('error', e => errors.push(e.type + ': ' + e.message));
    peer.on('connection', conn => {
      window.incoming = conn;
      conn.on('data', d => received.push(d));
      conn.on('error', e => errors.push('conn ' + e.type + ': ' + e.message));
    });
    await new Promise((resolve, reject) => { peer.on('open', resolve); peer.on('error', reject); });
    return peer.id;
  },
  openConn(remote, options) {
    const conn = peer.connect(remote, options);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('connection did not open')), 15000);
      conn.on('open', () => { clearTimeout(timer); resolve(conn); });
      conn.on('error', e => { clearTimeout(timer); reject(e); });
      peer.on('error', e => { clearTimeout(timer); reject(e); });
    });
  },
  async echo(conn, values, timeoutMs) {
    // one at a time: the default channel is unordered, so replies may overtake each other
    const results = [];
    for (const v of values) {
      const echoed = await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no echo for value ' + results.length)), timeoutMs);
        conn.once('data', d => { clearTimeout(timer); resolve(d); });
        conn.send(v);
      });
      results.push({ same: t.eq(v, echoed), sent: t.kind(v), got: t.kind(echoed),
                     size: t.view(echoed) ? t.view(echoed).length : null });
    }
    return results;
  },
};
"""

PAGE = f"""<!doctype html><html><head><meta charset="utf-8">
<script src="/peer.js"></script><script>{PAGE_JS}</script></head>
<body><video id="v" autoplay playsinline muted></video></body></html>"""


async def open_client_page(browser: Browser) -> Page:
    """A fresh context and page with PeerJS loaded and ``window.t`` helpers."""
    for path in FILES.values():
        if not path.exists():
            missing(f"{path.relative_to(ROOT)} is missing (npm install)")

    async def serve(route: Route) -> None:
        path = "/" + route.request.url.removeprefix(ORIGIN).lstrip("/").split("?")[0]
        if path == "/":
            await route.fulfill(body=PAGE, content_type="text/html; charset=utf-8")
        elif path in FILES:
            await route.fulfill(body=FILES[path].read_bytes(), content_type="text/javascript")
        else:
            await route.fulfill(status=404, body="not found")

    context = await browser.new_context()
    await context.grant_permissions(["local-network-access"], origin=ORIGIN)
    await context.grant_permissions(["camera", "microphone"], origin=ORIGIN)
    await context.route(f"{ORIGIN}/**", serve)
    page = await context.new_page()
    await page.goto(f"{ORIGIN}/")
    await page.wait_for_function("typeof Peer === 'function' && typeof t === 'object'")
    return page


def peer_options(server: Any) -> dict[str, Any]:
    return {"host": server.host, "port": server.port, "path": server.path, "key": "peerjs",
            "secure": False, "config": {"iceServers": []}, "debug": 1}  # fmt: skip


async def new_browser_peer(
    page: Page, server: Any, peer_id: str | None = None, *, msgpack: bool = False
) -> str:
    """Create the page's Peer (or MsgPackPeer) and wait until it is open; return its id."""
    result: str = await page.evaluate(
        "([id, options, msgpack]) => t.newPeer(id, options, msgpack)",
        [peer_id, peer_options(server), msgpack],
    )
    return result
