"""Small fixes to daphne's websocket protocol that a PeerServer needs.

1. Close codes 1008 and 1009.

The ASGI spec lets an application close a websocket with any valid code, but daphne
passes the code to autobahn's ``sendClose``, which only accepts 1000 and 3000-4999 and
raises on 1008 (policy violation) or 1009 (message too big); daphne then reports the
exception as 1011. This sends the close frame directly for the codes RFC 6455 allows
an endpoint to send, and leaves everything else to daphne.

2. Sending to a socket that is already closing. Autobahn raises ``Disconnected`` when a
frame is sent after the closing handshake began but before daphne noticed the close;
that exception would land in whichever consumer was delivering to the socket (another
peer's relay) and kill it. Such frames are dropped: the closing socket's own consumer
learns of the close through ``websocket.disconnect``.

4. Autobahn formats debug-log arguments with ``pprint.pformat`` eagerly, for every
connection, even with debug logging off (3-4 % of a connection's CPU in the bench's
profile). The formatting is made lazy: the text is built only if a debug line is
actually written.

3. A bounded send buffer. Twisted buffers whatever is written to a socket the peer does
not read, without limit. A socket with more than ``limit`` bytes waiting is dropped,
so a peer that never reads cannot grow the server's memory. The same holds for a
streaming HTTP response (the 0.3.x XHR stream): past ``limit`` bytes waiting the
connection is aborted and the application gets ``http.disconnect``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pprint import pformat
from typing import Any

from autobahn.websocket import protocol as autobahn_protocol
from daphne.http_protocol import WebRequest
from daphne.ws_protocol import WebSocketProtocol

logger = logging.getLogger(__name__)

SENDABLE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011})
_original_server_close = WebSocketProtocol.serverClose
_original_server_send = WebSocketProtocol.serverSend
_original_http_reply = WebRequest.handle_reply
_send_buffer_limit = 2 * 1024 * 1024


def buffered_bytes(transport: Any) -> int:
    """Bytes a Twisted transport tried to write and the kernel refused (its socket buffer
    is full). Writes made during the current reactor tick are not counted: a burst to a
    peer that reads is not a slow peer."""
    pending = len(getattr(transport, "dataBuffer", b"")) - getattr(transport, "offset", 0)
    return int(pending)


def _server_send(self: Any, content: Any, binary: bool = False) -> None:
    if self.state not in (self.STATE_OPEN, self.STATE_CONNECTING):
        return
    if self.transport is not None and buffered_bytes(self.transport) > _send_buffer_limit:
        logger.warning("dropping a websocket that does not read (%d bytes waiting)",
                       buffered_bytes(self.transport))
        self.transport.abortConnection()
        return
    _original_server_send(self, content, binary)


def _http_reply(self: Any, message: dict[str, Any]) -> None:
    transport = None if self.channel is None else self.channel.transport
    if (message.get("type") == "http.response.body" and transport is not None
            and buffered_bytes(transport) > _send_buffer_limit):
        logger.warning("dropping an HTTP response that is not read (%d bytes waiting)",
                       buffered_bytes(transport))
        transport.abortConnection()
        return
    _original_http_reply(self, message)


def _server_close(self: Any, code: int | None = None) -> None:
    if self.state not in (self.STATE_OPEN, self.STATE_CONNECTING):
        return
    if code in SENDABLE_CODES:
        self.sendCloseFrame(code=code, isReply=False)
    else:
        _original_server_close(self, code=code)


class _LazyFormat:
    """``pformat(obj)``, computed only when turned into text."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __str__(self) -> str:
        return pformat(self.obj)

    __repr__ = __str__


def install(send_buffer_limit: int) -> None:
    """Patch daphne's websocket protocol (idempotent)."""
    global _send_buffer_limit
    _send_buffer_limit = send_buffer_limit
    autobahn_protocol.pformat = _LazyFormat  # type: ignore[assignment]
    WebSocketProtocol.serverClose = _server_close
    WebSocketProtocol.serverSend = _server_send
    WebRequest.handle_reply = _http_reply


def on_shutdown(close_all: Callable[[], Awaitable[None]]) -> None:
    """Run ``close_all`` when daphne's reactor begins to stop (SIGTERM, SIGINT).

    It runs before daphne cancels the applications, so sockets get a real close frame
    (1001, going away) instead of a dropped connection.
    """
    from twisted.internet import defer, reactor

    def trigger() -> defer.Deferred[None]:
        return defer.Deferred.fromFuture(asyncio.ensure_future(close_all()))

    reactor.addSystemEventTrigger("before", "shutdown", trigger)  # type: ignore[arg-type]
