"""ASGI entry point: the PeerJS HTTP routes, Django for the rest of HTTP, and the PeerJS
consumer at ``{path}peerjs``."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peerhub.settings")
django_http = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from peerhub import daphne_compat  # noqa: E402
from peerhub.proxy import trusted_from_env  # noqa: E402
from peerhub.proxy_asgi import ProxyHeaders  # noqa: E402
from signalling.config import get_config  # noqa: E402
from signalling.consumers import PeerConsumer  # noqa: E402
from signalling.health import ROUTES as HEALTH_ROUTES  # noqa: E402
from signalling.http_api import peerjs_http_app  # noqa: E402
from signalling.metrics_http import METRICS_PATH, metrics_app  # noqa: E402
from signalling.node import get_node  # noqa: E402
from signalling.unavailable import refusal, send_refusal  # noqa: E402


async def drain() -> None:
    """Drain this node (stop admitting, close its peers over DRAIN_WINDOW); idempotent."""
    await get_node().drain()


daphne_compat.install(settings.PEERHUB_SEND_BUFFER_LIMIT)
if "twisted.internet.reactor" in sys.modules:  # running under daphne
    from twisted.internet import reactor

    daphne_compat.on_shutdown(drain)

    def _start_node() -> None:
        # daphne may import this module before or after its loop runs: either way the
        # node's background work (hub tasks, control listener) starts once it does.
        asyncio.get_event_loop().call_soon(lambda: get_node().start())

    reactor.callWhenRunning(_start_node)
#: The PeerJS socket's ASGI application. The websocket front (``peerhub.front``) runs it
#: directly for ``{path}peerjs``: it has already matched the path, and each layer of
#: routing is another coroutine frame kept alive for every connected peer.
peer_socket_app = PeerConsumer.as_asgi()


async def websocket_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Serve the exact path ``{path}peerjs``; refuse any other websocket path."""
    if scope["path"] == get_config().ws_path:
        await peer_socket_app(scope, receive, send)
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.close", "code": 1008})


async def http_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``/metrics`` (exact path) to the Prometheus endpoint; ``GET /healthz`` and
    ``/readyz`` (signalling.health); the PeerJS routes as plain ASGI apps (no Django
    request cycle), refused with 503 while this node drains and 403 for a banned
    address; Django otherwise."""
    if scope["path"] == METRICS_PATH:
        await metrics_app(scope, receive, send)
        return
    health = HEALTH_ROUTES.get(scope["path"])
    if health is not None and scope["method"] in ("GET", "HEAD"):
        await health(scope, receive, send)
        return
    app = peerjs_http_app(scope["path"])
    if app is None:
        await django_http(scope, receive, send)
        return
    refused = refusal(scope)
    if refused is not None:
        await send_refusal(refused, receive, send)
        return
    await app(scope, receive, send)


application = ProxyHeaders(
    ProtocolTypeRouter({"http": http_app, "websocket": websocket_app}),
    trusted_from_env())
