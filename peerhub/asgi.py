"""ASGI entry points: the PeerJS HTTP routes, Django for the rest of HTTP, and the PeerJS
consumer at ``{path}peerjs``.

The edge (:mod:`edge`) runs :data:`peer_socket_app` itself for the websocket path and
``signalling.http_api``'s applications for the PeerJS HTTP routes, and proxies every
other request to daphne, which runs :data:`application` (so only Django's requests
reach it). :data:`application` also routes websockets and the PeerJS HTTP routes, for
in-process tests (``WebsocketCommunicator``, ``HttpCommunicator``).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peerhub.settings")
django_http = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402

from peerhub.proxy import trusted_from_env  # noqa: E402
from peerhub.proxy_asgi import ProxyHeaders  # noqa: E402
from signalling.config import get_config  # noqa: E402
from signalling.consumers import PeerConsumer  # noqa: E402
from signalling.health import ROUTES as HEALTH_ROUTES  # noqa: E402
from signalling.http_api import peerjs_http_app  # noqa: E402
from signalling.metrics_http import METRICS_PATH, metrics_app  # noqa: E402
from signalling.unavailable import gated  # noqa: E402


#: The PeerJS socket's ASGI application. The edge runs it directly for ``{path}peerjs``:
#: it has already matched the path, and each layer of routing is another coroutine frame
#: kept alive for every connected peer.
def peer_socket_app(scope: dict[str, Any], receive: Any, send: Any) -> Awaitable[None]:
    """A new :class:`PeerConsumer` for one socket: its coroutine itself, not awaited
    inside another (Channels' ``as_asgi()`` wrapper would keep one more frame alive per
    peer)."""
    return PeerConsumer()(scope, receive, send)


async def websocket_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Serve the exact path ``{path}peerjs``; refuse any other websocket path."""
    if scope["path"] == get_config().ws_path:
        await peer_socket_app(scope, receive, send)
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.close", "code": 1008})


async def http_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``/metrics`` (exact path) to the Prometheus endpoint, ``/healthz`` and ``/readyz``,
    the PeerJS routes as plain ASGI apps (no Django request cycle; 503 while draining,
    403 for a banned address); Django otherwise. (The edge has the same table.)"""
    if scope["path"] == METRICS_PATH:
        await metrics_app(scope, receive, send)
        return
    health = HEALTH_ROUTES.get(scope["path"])
    if health is not None:
        await health(scope, receive, send)
        return
    app = gated(peerjs_http_app(scope["path"]))
    await (django_http if app is None else app)(scope, receive, send)


application = ProxyHeaders(
    ProtocolTypeRouter({"http": http_app, "websocket": websocket_app}),
    trusted_from_env())
