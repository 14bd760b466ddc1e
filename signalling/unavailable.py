"""HTTP 503, never 500, when Redis or the database cannot be reached (Django routes);
503 on the PeerJS routes while this node drains and 403 for a banned address
(:func:`refusal`, used by ``peerhub.asgi`` in front of the PeerJS ASGI apps).

Hub look-ups raise :class:`~signalling.errors.ClusterUnavailable` when Redis is away, and
the ORM raises ``DatabaseError`` when the database is; this middleware turns either into
``503 Service Unavailable`` with ``Retry-After`` and the PeerJS-style text the websocket
sends ("Server is temporarily unavailable"), instead of a traceback and a 500. While the
node drains, the PeerJS HTTP routes answer the same 503, so a proxy with
``proxy_next_upstream http_503`` (deploy/nginx-peerhub.conf) asks another node.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.utils.deprecation import MiddlewareMixin

from signalling.errors import ClusterUnavailable
from signalling.protocol import Errors

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 2


def unavailable() -> HttpResponse:
    """The 503 answer, with ``Retry-After``."""
    response = HttpResponse(Errors.CLUSTER_UNAVAILABLE, status=503, content_type="text/plain")
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class ServiceUnavailableMiddleware(MiddlewareMixin):
    """Map an unreachable cluster directory or database to 503; drain and bans."""

    def process_request(self, request: HttpRequest) -> HttpResponse | None:
        """403 for a banned address (the Django routes: admin, dashboard)."""
        import time

        from signalling.node import get_node

        if get_node().bans.is_banned(str(request.META.get("REMOTE_ADDR", "")), time.time()):
            return HttpResponse(Errors.BANNED, status=403, content_type="text/plain")
        return None

    def process_exception(self, request: HttpRequest,
                          exception: Exception) -> HttpResponse | None:
        """A 503 for the two outages; anything else goes on to Django's handling."""
        if isinstance(exception, ClusterUnavailable):
            what = "redis"
        elif isinstance(exception, DatabaseError):
            what = "the database"
        else:
            return None
        # Not the path: the 0.3.x routes carry the peer's token in it.
        logger.error("503 for an HTTP %s: %s is unreachable (%s)", request.method, what,
                     exception)
        return unavailable()


# --- the same gate for the PeerJS routes, which are plain ASGI apps --------------------

def refusal(scope: dict[str, Any]) -> tuple[int, str] | None:
    """``(status, text)`` when this node must refuse a PeerJS HTTP request: 403 for a
    banned address, 503 while draining (a proxy then asks the next node)."""
    import time

    from signalling.node import get_node

    node = get_node()
    client = scope.get("client") or ("",)
    if node.bans.is_banned(str(client[0]), time.time()):
        return 403, Errors.BANNED
    if node.draining:
        return 503, Errors.CLUSTER_UNAVAILABLE
    return None


async def send_refusal(refused: tuple[int, str], receive: Any, send: Any) -> None:
    """Answer an ASGI HTTP request with ``refused`` (plain text, Retry-After on 503)."""
    status, message = refused
    body = message.encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    if status == 503:
        headers.append((b"retry-after", str(RETRY_AFTER_SECONDS).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def gated(app: Any) -> Any:
    """``app`` (a PeerJS route's ASGI app, or None) behind :func:`refusal`."""
    if app is None:
        return None

    async def gate(scope: dict[str, Any], receive: Any, send: Any) -> None:
        refused = refusal(scope)
        if refused is not None:
            await send_refusal(refused, receive, send)
            return
        await app(scope, receive, send)

    return gate
