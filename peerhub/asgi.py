"""ASGI entry point: the PeerJS HTTP routes, Django for the rest of HTTP, and the PeerJS
consumer at ``{path}peerjs``."""

from __future__ import annotations

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
from signalling.http_api import peerjs_http_app  # noqa: E402
from signalling.metrics_http import METRICS_PATH, metrics_app  # noqa: E402
from signalling.runtime import get_hub  # noqa: E402


async def _close_all_sockets() -> None:
    await get_hub().close_all(None, 1001, "server stopped")


daphne_compat.install(settings.PEERHUB_SEND_BUFFER_LIMIT)
if "twisted.internet.reactor" in sys.modules:  # running under daphne
    daphne_compat.on_shutdown(_close_all_sockets)
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
    """``/metrics`` (exact path) to the Prometheus endpoint, the PeerJS routes as plain
    ASGI apps (no Django request cycle); Django otherwise."""
    if scope["path"] == METRICS_PATH:
        await metrics_app(scope, receive, send)
        return
    app = peerjs_http_app(scope["path"])
    await (django_http if app is None else app)(scope, receive, send)


application = ProxyHeaders(
    ProtocolTypeRouter({"http": http_app, "websocket": websocket_app}),
    trusted_from_env())
