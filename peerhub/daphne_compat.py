"""Let daphne close websockets with the standard codes 1008 and 1009.

The ASGI spec lets an application close a websocket with any valid code, but daphne
passes the code to autobahn's ``sendClose``, which only accepts 1000 and 3000-4999 and
raises on 1008 (policy violation) or 1009 (message too big); daphne then reports the
exception as 1011. This sends the close frame directly for the codes RFC 6455 allows
an endpoint to send, and leaves everything else to daphne.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from daphne.ws_protocol import WebSocketProtocol

SENDABLE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011})
_original_server_close = WebSocketProtocol.serverClose


def _server_close(self: Any, code: int | None = None) -> None:
    if code in SENDABLE_CODES:
        self.sendCloseFrame(code=code, isReply=False)
    else:
        _original_server_close(self, code=code)


def install() -> None:
    """Patch daphne's websocket protocol (idempotent)."""
    WebSocketProtocol.serverClose = _server_close


def on_shutdown(close_all: Callable[[], Awaitable[None]]) -> None:
    """Run ``close_all`` when daphne's reactor begins to stop (SIGTERM, SIGINT).

    It runs before daphne cancels the applications, so sockets get a real close frame
    (1001, going away) instead of a dropped connection.
    """
    from twisted.internet import defer, reactor

    def trigger() -> defer.Deferred[None]:
        return defer.Deferred.fromFuture(asyncio.ensure_future(close_all()))

    reactor.addSystemEventTrigger("before", "shutdown", trigger)  # type: ignore[arg-type]
