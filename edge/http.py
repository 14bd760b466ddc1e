"""The HTTP/1.1 connection: request heads parsed by httptools (llhttp), limits, dispatch.

Each accepted connection starts here. Requests are parsed strictly (llhttp rejects NUL
and CR inside header values, bare-LF line ends, folded lines); on top of that this module
refuses HTTP versions other than 1.0 and 1.1 and repeated ``Sec-WebSocket-Key`` headers
(400), heads over the limit (431, counted as the parser reads them, so a head in one
write is caught too), bodies over the limit (413: from ``Content-Length`` before any of
the body is read, or when a chunked body crosses it). The head and body deadlines are
set when a phase starts and never moved by arriving bytes.

A complete request goes to exactly one of: the websocket (:mod:`edge.websocket`) for an
upgrade at the websocket path, an ASGI application from the route table
(:mod:`edge.asgi_http`), or Django (:mod:`edge.upstream`). Requests are answered in order;
pipelined ones wait, and reading pauses when too many wait.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, cast
from urllib.parse import unquote

import httptools

from edge.clientaddr import client_address
from edge.types import ASGI_VERSION, Scope
from edge.websocket import EXTENSIONS, WebSocket, refusal_frame
from peerhub import wsframes as wf
from peerhub.proxy import BadProxyHeader

if TYPE_CHECKING:
    from edge.server import Edge, Listener

logger = logging.getLogger(__name__)

#: Request headers kept in a websocket's scope, which lives as long as the socket: the
#: ones the PeerJS consumer and a proxy set-up read. Cookies and the handshake's own
#: headers would only cost memory for every connected peer (and keep cookies around).
WS_SCOPE_HEADERS = frozenset({b"host", b"origin", b"user-agent", b"x-forwarded-for",
                              b"x-forwarded-proto", b"x-forwarded-port", b"x-real-ip",
                              b"sec-websocket-protocol"})
#: Seconds a refused connection is read (and ignored) after its answer, before closing.
LINGER_SECONDS = 2.0
#: Seconds a connection refused by the per-address limits may take to send its head.
REFUSED_TIMEOUT = 2.0
#: The header counted by ``Request.ws_keys`` (a request with two is refused).
WS_KEY = b"sec-websocket-key"
REASONS = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 408: "Request Timeout",
           413: "Content Too Large", 429: "Too Many Requests",
           431: "Request Header Fields Too Large", 500: "Internal Server Error",
           502: "Bad Gateway", 503: "Service Unavailable"}


class RequestRefused(Exception):
    """A request breaks a limit or the grammar: answer ``status`` and close."""

    def __init__(self, status: int, text: str):
        super().__init__(text)
        self.status = status
        self.text = text


class Request:
    """One parsed request: its head, its whole body (bounded) and how it wants to end."""

    __slots__ = ("method", "target", "path", "query", "version", "headers", "_noted",
                 "ws_keys", "body", "keep_alive", "upgrade", "client", "scheme")

    def __init__(self) -> None:
        self.method = ""
        self.target = b""
        self.path = ""
        self.query = b""
        self.version = "1.1"
        self.headers: list[tuple[bytes, bytes]] = []
        self._noted: dict[bytes, bytes] | None = None
        self.ws_keys = 0  # Sec-WebSocket-Key headers (counted by ``noted``)
        self.body: list[bytes] = []
        self.keep_alive = True
        self.upgrade = False
        self.client: tuple[str, int] = ("", 0)
        self.scheme = "http"

    def header(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (lower case), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    @property
    def noted(self) -> dict[bytes, bytes]:
        """The first value of each header (made once, by C code: the head's checks and
        the upgrade read several; it was a Python loop over the headers of about 120
        bytecodes per websocket); ``ws_keys`` counts the Sec-WebSocket-Key headers."""
        if self._noted is None:
            headers = self.headers
            noted = self._noted = dict(reversed(headers))  # the first value wins
            if len(noted) == len(headers):  # no name repeated (every honest client)
                self.ws_keys = 1 if WS_KEY in noted else 0
            else:
                self.ws_keys = sum(1 for name, _ in headers if name == WS_KEY)
        return self._noted

    def http_scope(self, server: tuple[str, int]) -> Scope:
        """The ASGI HTTP scope of this request."""
        return {"type": "http", "asgi": ASGI_VERSION, "http_version": self.version,
                "method": self.method, "scheme": self.scheme, "path": self.path,
                "raw_path": self.target.partition(b"?")[0], "query_string": self.query,
                "root_path": "", "headers": self.headers, "client": self.client,
                "server": server}


def plain(status: int, text: str, close: bool = True,
          extra: list[tuple[bytes, bytes]] | None = None) -> bytes:
    """A whole short text/plain response."""
    body = text.encode()
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, '')}".encode(),
             b"Content-Type: text/plain; charset=utf-8",
             b"Content-Length: " + str(len(body)).encode()]
    lines += [name + b": " + value for name, value in extra or ()]
    if close:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def websocket_key(req: Request) -> bytes | None:
    """The Sec-WebSocket-Key of a valid version-13 GET upgrade, else None."""
    return wf.upgrade_key(req.method, req.noted.get)


class HttpConnection(asyncio.Protocol):
    """One TCP (or TLS) connection until it closes or becomes a websocket."""

    # Slots: one of these is made for every connection the edge accepts.
    __slots__ = ("edge", "listener", "limits", "parser", "loop", "peer", "_server",
                 "refused", "released", "current", "head_size", "body_size", "queue",
                 "busy", "closing", "paused", "timer", "drain_waiter", "write_paused",
                 "task", "upgrade_rest", "upgrade_paused", "served", "is_lost", "_lost",
                 "transport", "_headers")

    transport: asyncio.Transport

    def __init__(self, edge: Edge, listener: Listener):
        self.edge = edge
        self.listener = listener
        self.limits = edge.options.limits
        #: The parser holds this protocol (its callbacks): dropped at the end or the
        #: upgrade, so that no reference cycle outlives the connection.
        self.parser: httptools.HttpRequestParser | None = httptools.HttpRequestParser(self)
        self.loop = edge.loop or asyncio.get_running_loop()
        self.peer: tuple[str, int] = ("", 0)
        self._server: tuple[str, int] | None = None
        self.refused: str | None = None  # the admission's refusal text
        self.released = True
        self.current: Request | None = None  # being parsed
        self._headers: list[tuple[bytes, bytes]] = []  # the headers of ``current``
        self.head_size = 0
        self.body_size = 0
        self.queue: deque[Request] = deque()  # parsed, waiting to be answered
        self.busy = False
        self.closing = False
        self.paused = False
        self.timer: asyncio.TimerHandle | None = None
        self.drain_waiter: asyncio.Future[None] | None = None
        self.write_paused = False
        self.task: asyncio.Task[None] | None = None
        self.upgrade_rest: bytes | None = None
        self.upgrade_paused = False  # reading paused until the upgrade's turn comes
        self.served = False  # a response was sent (the next head's deadline starts anew)
        self.is_lost = False
        self._lost: asyncio.Future[None] | None = None  # made when someone waits for it

    # --- connection events ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (the write buffer's high-water mark stays asyncio's and uvloop's 64 KiB)
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername") or ("", 0)
        self.peer = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else ("", 0)
        counted = self.edge.counts(self.peer[0])
        self.refused = self.edge.admit(self.peer[0]) if counted else None
        self.released = not counted or self.refused is not None
        self.edge.connections.add(self)
        # a refused connection is only kept to answer in its own protocol's words
        self._deadline(self.limits.head_timeout if self.refused is None
                       else min(self.limits.head_timeout, REFUSED_TIMEOUT))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.parser = None
        self.is_lost = True
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)
        self._cancel_timer()
        self.edge.connections.discard(self)
        self.release()
        waiter = self.drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self.edge.connection_closed(self)

    def when_lost(self) -> asyncio.Future[None]:
        """A future done when the connection is lost (one per connection, made on the
        first call: most connections never need it)."""
        if self._lost is None:
            self._lost = self.loop.create_future()
            if self.is_lost:
                self._lost.set_result(None)
        return self._lost

    @property
    def server(self) -> tuple[str, int]:
        """The local address of the connection (the scope's ``server``), looked up once."""
        if self._server is None:
            fixed = self.listener.address
            if fixed is not None:
                self._server = fixed
                return fixed
            sock = self.transport.get_extra_info("sockname") or ("", 0)
            self._server = ((str(sock[0]), int(sock[1])) if isinstance(sock, tuple)
                            else ("", 0))
        return self._server

    def release(self) -> None:
        """Give this connection's place back to the per-address count (once)."""
        if not self.released:
            self.released = True
            self.edge.release(self.peer[0])

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        waiter, self.drain_waiter = self.drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def drain(self) -> None:
        """Wait until the write buffer is below its high-water mark; a client that reads
        nothing for ``body_timeout`` seconds is dropped."""
        if self.write_paused and not self.closing:
            self.drain_waiter = self.loop.create_future()
            try:
                await asyncio.wait_for(asyncio.shield(self.drain_waiter),
                                       self.limits.body_timeout)
            except TimeoutError:
                logger.warning("dropping an HTTP connection that stopped reading")
                self.transport.abort()

    def over_send_limit(self) -> bool:
        """True (and the connection aborted) when a reader left too much unread."""
        waiting = self.transport.get_write_buffer_size()
        if waiting > self.limits.send_buffer_limit:
            logger.warning("dropping an HTTP connection that does not read "
                           "(%d bytes waiting)", waiting)
            self.transport.abort()
            return True
        return False

    # --- deadlines --------------------------------------------------------------------

    def _deadline(self, seconds: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.loop.call_later(seconds, self._expired)

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _expired(self) -> None:
        self.timer = None
        if self.busy or self.closing:
            return
        if self.current is None and not self.head_size:
            self.transport.close()  # idle: nothing to answer
            return
        logger.info("dropping a connection from %s: request not complete in time",
                    self.peer[0])
        self._refuse(RequestRefused(408, "Request Timeout"))

    # --- parsing ----------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        if self.closing or parser is None:
            return
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self.upgrade_rest = data[upgrade.args[0]:]
            if self.busy or len(self.queue) > 1:  # requests before it are answered first
                self.upgrade_paused = True
                self.transport.pause_reading()
            self._next()
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            self._refuse(cause if isinstance(cause, RequestRefused)
                         else RequestRefused(400, "Bad Request"))
        except httptools.HttpParserError as exc:
            logger.info("malformed request from %s: %s", self.peer[0], exc)
            self._refuse(RequestRefused(400, "Bad Request"))
        else:
            if self.queue and not self.busy:
                self._next()  # the parser has returned: answer what it completed

    def on_message_begin(self) -> None:
        req = self.current = Request()
        self._headers = req.headers  # (on_header appends here: no attribute chain)
        self.head_size = 1  # not idle any more, even before the first byte is counted
        self.body_size = 0
        if self.served and not self.queue and not self.busy:
            # bytes of the next request on a kept-alive connection: its head deadline
            # (the first request's runs from the accept)
            self._deadline(self.limits.head_timeout)

    # The head is counted as the parser reads it (inline: these run for every header).

    def on_url(self, url: bytes) -> None:
        self.head_size += len(url) + 16
        if self.head_size > self.limits.max_head_size:
            raise RequestRefused(431, "Request Header Fields Too Large")
        assert self.current is not None
        self.current.target += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_size += len(name) + len(value) + 4
        if self.head_size > self.limits.max_head_size:
            raise RequestRefused(431, "Request Header Fields Too Large")
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        req = self.current
        assert req is not None
        parser = self.parser
        assert parser is not None
        version = parser.get_http_version()
        if version not in ("1.1", "1.0"):
            raise RequestRefused(400, "Bad Request: unsupported HTTP version")
        req.version = version
        req.method = parser.get_method().decode("ascii", "replace")
        req.keep_alive = parser.should_keep_alive()
        req.upgrade = bool(parser.should_upgrade())
        raw_path, _, req.query = req.target.partition(b"?")
        path = raw_path.decode("latin-1")
        req.path = unquote(path) if "%" in path else path
        noted = req.noted
        if req.ws_keys > 1:
            raise RequestRefused(400, "Bad Request: repeated Sec-WebSocket-Key")
        length = noted.get(b"content-length")
        try:
            req.client, scheme = client_address(self.peer, req.headers,
                                                self.edge.options.trusted_proxies)
        except BadProxyHeader as exc:
            raise RequestRefused(400, str(exc)) from None
        req.scheme = scheme or self.listener.scheme
        if length is not None and length.isdigit() and \
                int(length) > self.limits.max_body_size:
            raise RequestRefused(413, "Content Too Large")
        if not self.busy and not self.queue and (
                (length is not None and length != b"0")
                or b"transfer-encoding" in noted):
            self._deadline(self.limits.body_timeout)  # a body to wait for
        if noted.get(b"expect") == b"100-continue" and not self.busy:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self.body_size += len(body)
        if self.body_size > self.limits.max_body_size:
            raise RequestRefused(413, "Content Too Large")
        assert self.current is not None
        self.current.body.append(body)

    def on_message_complete(self) -> None:
        req, self.current = self.current, None
        assert req is not None
        self.head_size = 0
        self.queue.append(req)
        if len(self.queue) > self.limits.max_pipelined and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        if not self.busy:
            if self.timer is not None:
                self._cancel_timer()  # data_received answers it once the parser returns

    # --- answering --------------------------------------------------------------------

    def _refuse(self, refusal: RequestRefused) -> None:
        """Answer a refusal at once (after any response in progress) and close."""
        self.closing = True
        self.queue.clear()
        self._cancel_timer()
        if self.busy:
            self.transport.abort()
            return
        self.edge.log_request(self.peer, "-", "-", refusal.status, len(refusal.text))
        self.transport.write(plain(refusal.status, refusal.text))
        self._linger_close()

    def _linger_close(self) -> None:
        """Close after a refusal without losing it: stop writing, read (and drop) what
        the client still sends for a moment, then close. Closing at once would make the
        kernel answer the unread bytes with a reset, which can destroy the response
        before the client reads it."""
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()
        self.transport.resume_reading()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def _next(self) -> None:
        if self.busy or self.closing or not self.queue:
            return
        req = self.queue.popleft()
        if self.paused and len(self.queue) < self.limits.max_pipelined // 2:
            self.paused = False
            self.transport.resume_reading()
        self._cancel_timer()
        if self.upgrade_rest is not None and not self.queue:
            self._upgrade(req, self.upgrade_rest)
            return
        self.busy = True
        if self.refused is not None:
            if not self.edge.routes.find(req.path, self.listener.public):
                self._finish_refused(req)
                return
            # Over a per-address limit, a PeerJS route answers in its own words (the
            # 0.3.x stream sends the PeerJS ERROR: it applies the same per-address
            # guard), once: then the connection ends, so it holds no place.
            req.keep_alive = False
        self.task = self.loop.create_task(self._answer(req))

    def _finish_refused(self, req: Request) -> None:
        self.edge.limit_refused(self.refused or "", self.peer[0])
        body = self.refused or ""
        self.transport.write(plain(429, body))
        self.edge.log_request(req.client, req.method, req.target.decode("latin-1"), 429,
                              len(body))
        self.closing = True
        self.transport.close()

    async def _answer(self, req: Request) -> None:
        status: int | None = None
        length: int | None = None
        keep = False
        try:
            status, length, keep = await self.edge.answer(self, req)
        except asyncio.CancelledError:
            self.transport.abort()
            raise
        except Exception:  # a fault of the edge's own: this connection ends, no other
            logger.exception("%s %s: answering failed", req.method, req.path)
            if not self.is_lost:
                self.transport.write(plain(500, "Internal Server Error"))
            keep = False
        finally:
            self.task = None
            self.edge.log_request(req.client, req.method, req.target.decode("latin-1"),
                                  status, length)
        self.busy = False
        self.served = True
        if not keep or not req.keep_alive or self.transport.is_closing():
            self.closing = True
            self.transport.close()
        elif self.queue:
            self._next()
        else:
            self._deadline(self.limits.keepalive_timeout)

    def _upgrade(self, req: Request, rest: bytes) -> None:
        """Hand the connection to a websocket, or refuse the upgrade."""
        edge = self.edge
        key = websocket_key(req)
        if not self.listener.public or req.path != edge.options.ws_path:
            self._refuse(RequestRefused(403, "Forbidden"))  # as daphne answered before
            return
        if key is None:
            self._refuse(RequestRefused(400, "Bad Request: not a websocket upgrade"))
            return
        if self.refused is not None:
            edge.limit_refused(self.refused, req.client[0])
            self.transport.write(wf.switching_protocols(key) + refusal_frame(self.refused)
                                 + wf.close_frame(wf.CLOSE_POLICY))
            edge.log_action("WSREJECT", req.path, req.client)
            self.closing = True
            self.transport.close()
            return
        self.closing = True  # this protocol is done; the websocket takes over
        edge.connections.discard(self)
        self._cancel_timer()
        self.parser = None
        counted = None if self.released else self.peer[0]
        self.released = True  # the websocket gives the place back (it holds no link here)
        ws = WebSocket(edge, edge.options.websocket, self.transport,
                       self.websocket_scope(req), key, edge.ws_app, counted)
        self.transport.set_protocol(ws)
        if self.upgrade_paused:
            self.transport.resume_reading()
        if rest:
            ws.data_received(rest)

    def websocket_scope(self, req: Request) -> Scope:
        """The ASGI websocket scope for an upgrade request (as daphne built it)."""
        scheme = "wss" if req.scheme in ("https", "wss") else "ws"
        headers = []
        offered: list[str] = []
        for pair in req.headers:
            if pair[0] in WS_SCOPE_HEADERS:
                headers.append(pair)
                if pair[0] == b"sec-websocket-protocol":
                    offered += [s.strip() for s in pair[1].decode("latin-1").split(",")
                                if s.strip()]
        subprotocols = tuple(offered)  # () when none is offered: no empty list per socket
        # Ten keys: a dict of up to ten takes 272 bytes, of eleven or twelve 464, and this
        # one lives as long as the socket. ``http_version`` ("1.1"), ``root_path`` ("")
        # and ``raw_path`` are left out: the ASGI spec makes all three optional (the
        # first two with exactly those defaults), and no PeerJS application reads them.
        return {"type": "websocket", "asgi": ASGI_VERSION, "scheme": scheme,
                "server": self.server, "client": req.client, "path": req.path,
                "query_string": req.query, "headers": headers,
                "subprotocols": subprotocols, "extensions": EXTENSIONS}
