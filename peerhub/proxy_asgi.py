"""The ASGI side of :mod:`peerhub.proxy`: requests daphne serves get the client address
(and scheme) their trusted proxies reported; unreadable proxy headers get a 400."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from peerhub import proxy

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Application = Callable[[Scope, Any, Any], Awaitable[None]]


class ProxyHeaders:
    """Wrap an ASGI application; ``trusted`` None passes every scope through untouched."""

    def __init__(self, app: Application, trusted: proxy.TrustedProxies | None) -> None:
        self.app = app
        self.trusted = trusted

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        """Rewrite ``client``/``scheme`` from trusted proxy headers, or refuse."""
        if self.trusted is None or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        client = scope.get("client") or ("", 0)
        try:
            address, forwarded = proxy.from_headers(str(client[0]), scope.get("headers", ()),
                                                    self.trusted)
        except proxy.BadProxyHeader as exc:
            logger.info("refused a request from %s: %s", client[0], exc)
            await _refuse(scope, receive, send, str(exc))
            return
        if address != client[0] or forwarded is not None:
            scope = dict(scope)
            if address != client[0]:
                scope["client"] = (address, 0)
            if forwarded is not None:
                secure = forwarded == "https"
                if scope["type"] == "http":
                    scope["scheme"] = forwarded
                else:
                    scope["scheme"] = "wss" if secure else "ws"
        await self.app(scope, receive, send)


async def _refuse(scope: Scope, receive: Any, send: Any, text: str) -> None:
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.close", "code": 1008})  # daphne answers 403
        return
    body = text.encode()
    await send({"type": "http.response.start", "status": 400,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
