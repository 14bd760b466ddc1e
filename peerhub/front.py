"""peerhub's websocket front: the PeerJS socket on plain asyncio, everything else to daphne.

The public port is an asyncio server in daphne's own process and event loop (daphne
runs Twisted on asyncio). It reads the first request head of each connection:

- a valid websocket upgrade for exactly ``{path}peerjs`` is served here: the handshake
  and RFC 6455 frames (:mod:`peerhub.wsframes`) are handled by :class:`WebSocket`, which
  runs the same ASGI application (the PeerJS consumer) as daphne would, with the same
  events. Frames go straight from the socket to the application without Twisted or
  autobahn (the benchmark's profile put most of the per-frame and per-connection
  cost there);
- any other connection (HTTP requests, other websocket paths, anything malformed) is
  handed over to daphne as it stands: the socket is adopted by Twisted and the bytes
  already read are replayed to daphne's HTTP protocol, so daphne answers exactly as
  it would have.

Liveness is one sweep for all sockets: a socket that sent nothing for a ping interval
gets a ping, and one that answers nothing for another interval is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any, cast
from urllib.parse import unquote

from peerhub import proxy
from peerhub import wsframes as wf

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Message = dict[str, Any]
Application = Callable[[Scope, Callable[[], Awaitable[Message]],
                        Callable[[Message], Awaitable[None]]], Awaitable[None]]

SENDABLE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011})
#: Received messages waiting for the application before reading from the socket pauses.
HIGH_WATER = 256
LOW_WATER = 64
#: Seconds a closing socket waits for the client's close frame.
CLOSE_TIMEOUT = 5.0
#: A read this small that leaves a frame unfinished is a trickle (browsers write each
#: frame whole): the socket is then read again only after DRIP_PAUSE seconds, so that a
#: sender dripping a frame in tiny writes costs reads per DRIP_PAUSE, not per write.
DRIP_READ = 512
DRIP_PAUSE = 0.05

CONNECTING, OPEN, CLOSING, CLOSED = range(4)
#: Request headers kept in a socket's scope, which lives as long as the socket: the ones
#: the PeerJS consumer and a proxy set-up read. Cookies and the handshake's own headers
#: would only cost memory for every connected peer (and keep cookies around).
SCOPE_HEADERS = frozenset({b"host", b"origin", b"user-agent", b"x-forwarded-for",
                           b"x-forwarded-proto", b"x-forwarded-port", b"x-real-ip",
                           b"sec-websocket-protocol"})
#: The scope's ``asgi`` entry, shared by every socket (applications only read it).
ASGI_VERSION = {"version": "3.0", "spec_version": "2.3"}


class FrontOptions:
    """What the front needs to know, all from the environment via ``peerhub.serve``."""

    def __init__(self, ws_path: str, max_message_size: int, ping_interval: float,
                 handshake_timeout: float, send_buffer_limit: int,
                 proxy_headers: bool, trusted_proxies: proxy.TrustedProxies | None = None):
        self.ws_path = ws_path.encode()
        self.ws_request_prefix = b"GET " + self.ws_path  # how a PeerJS upgrade starts
        self.max_message_size = max_message_size
        self.ping_interval = ping_interval
        self.handshake_timeout = handshake_timeout
        self.send_buffer_limit = send_buffer_limit
        self.proxy_headers = proxy_headers
        #: Whose X-Forwarded-For is read (peerhub.proxy); PROXY_HEADERS alone: loopback.
        self.trusted_proxies = trusted_proxies or (
            proxy.parse_trusted(proxy.LOOPBACK) if proxy_headers else None)


class Front:
    """The asyncio server on the public port (one per process)."""

    def __init__(self, options: FrontOptions, application: Application,
                 handoff: Callable[[asyncio.Transport, bytes], None],
                 access_log: Callable[[str, str, tuple[str, int]], None] | None = None):
        self.options = options
        self.application = application
        self.handoff = handoff
        self.access_log = access_log
        self.heads: set[HeadProtocol] = set()
        self.sockets: set[WebSocket] = set()
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self, sock: socket.socket, backlog: int) -> None:
        """Serve on an already listening socket (asyncio listens again with ``backlog``)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: HeadProtocol(self), sock=sock,
                                                backlog=backlog)
        self._sweeper = loop.create_task(self._sweep_forever(), name="peerhub-front-sweep")

    async def shutdown(self, grace: float = 3.0) -> None:
        """Stop accepting; give applications ``grace`` seconds to finish, then cancel."""
        if self._server is not None:
            self._server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        tasks = [ws.task for ws in self.sockets if ws.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)

    def log_action(self, verb: str, path: str, client: tuple[str, int]) -> None:
        """One access-log line (``WSCONNECT``, ``WSDISCONNECT``, ``WSREJECT``)."""
        if self.access_log is not None:
            self.access_log(verb, path, client)

    async def _sweep_forever(self) -> None:
        period = max(0.05, min(self.options.ping_interval, self.options.handshake_timeout) / 2)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(period)
            self.sweep(loop.time())

    def sweep(self, now: float) -> None:
        """Ping idle sockets, drop unresponsive ones and stalled handshakes."""
        interval = self.options.ping_interval
        for ws in list(self.sockets):
            ws.check_alive(now, interval)
        for head in list(self.heads):
            if now - head.started > self.options.handshake_timeout:
                head.transport.abort()


class HeadProtocol(asyncio.Protocol):
    """Reads one request head and decides: a PeerJS websocket here, or daphne."""

    transport: asyncio.Transport

    def __init__(self, front: Front):
        self.front = front
        self.buf = b""
        self.started = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.started = asyncio.get_running_loop().time()
        self.front.heads.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.front.heads.discard(self)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        buf = self.buf
        ws_prefix = self.front.options.ws_request_prefix
        if len(buf) < len(ws_prefix) + 1 and ws_prefix.startswith(buf):
            return  # not enough to decide yet
        if not buf.startswith(ws_prefix) or buf[len(ws_prefix)] not in b"? ":
            self._to_daphne()
            return
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > wf.MAX_HEAD_SIZE:
                self._to_daphne()
            return
        try:
            head = wf.parse_head(buf[:end])
        except wf.HeadError:
            self._to_daphne()
            return
        key = wf.upgrade_key(head)
        if key is None:
            self._to_daphne()
            return
        self._upgrade(head, key, buf[end + 4:])

    def _to_daphne(self) -> None:
        self.front.heads.discard(self)
        self.front.handoff(self.transport, self.buf)

    def _upgrade(self, head: wf.RequestHead, key: bytes, rest: bytes) -> None:
        self.front.heads.discard(self)
        try:
            scope = build_scope(self.front, self.transport, head)
        except proxy.BadProxyHeader as exc:
            body = str(exc).encode()
            self.transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
                                 b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                                 % (len(body), body))
            self.transport.close()
            return
        ws = WebSocket(self.front, self.transport, scope, key)
        self.transport.set_protocol(ws)
        if rest:
            ws.data_received(rest)


def build_scope(front: Front, transport: asyncio.Transport, head: wf.RequestHead) -> Scope:
    """The ASGI websocket scope for an upgrade request (as daphne builds it).

    Behind trusted proxies the client address comes from :func:`peerhub.proxy.from_headers`
    (which raises :class:`peerhub.proxy.BadProxyHeader` for headers it cannot read).
    """
    raw_path, _, query = head.target.partition(b"?")
    peer = transport.get_extra_info("peername") or ("", 0)
    sockname = transport.get_extra_info("sockname") or ("", 0)
    client: list[Any] = [str(peer[0]), int(peer[1])]
    scheme = "ws"
    if front.options.trusted_proxies is not None:
        address, forwarded = proxy.from_headers(client[0], head.headers,
                                                front.options.trusted_proxies)
        if address != client[0]:
            client = [address, 0]
        if forwarded is not None:
            scheme = "wss" if forwarded == "https" else "ws"
    subprotocols: list[str] = []
    for name, value in head.headers:
        if name == b"sec-websocket-protocol":
            subprotocols += [s.strip() for s in unquote(value.decode("ascii", "replace"))
                             .split(",") if s.strip()]
    return {
        "type": "websocket",
        "asgi": ASGI_VERSION,
        "http_version": "1.1",
        "scheme": scheme,
        "server": (str(sockname[0]), int(sockname[1])),
        "client": (client[0], client[1]),
        "root_path": "",
        "path": unquote(raw_path.decode("ascii", "replace")),
        "raw_path": raw_path,
        "query_string": query,
        "headers": [pair for pair in head.headers if pair[0] in SCOPE_HEADERS],
        "subprotocols": subprotocols,
    }


class WebSocket(asyncio.Protocol):
    """One accepted websocket, bridged to one ASGI application instance."""

    __slots__ = ("front", "transport", "scope", "key", "state", "reader", "events", "waiter",
                 "paused", "seen", "ping_sent", "close_code", "_close_timer", "_limit",
                 "_out", "_loop", "task", "_drip_timer")

    def __init__(self, front: Front, transport: asyncio.Transport, scope: Scope,
                 key: bytes):
        self.front = front
        self.transport = transport
        self.scope = scope
        self.key = key
        self.state = CONNECTING
        self.reader = wf.FrameReader(front.options.max_message_size)
        self.events: list[Message] = [{"type": "websocket.connect"}]  # rarely more than one
        self.waiter: asyncio.Future[None] | None = None
        self.paused = False
        self.seen = True
        self.ping_sent = 0.0
        self.close_code = wf.CLOSE_ABNORMAL
        self._close_timer: asyncio.TimerHandle | None = None
        self._limit = front.options.send_buffer_limit
        self._out: list[bytes] = []  # frames written in this loop iteration, not yet sent
        self._loop = asyncio.get_running_loop()
        self._drip_timer: asyncio.TimerHandle | None = None
        front.sockets.add(self)
        self.task: asyncio.Task[None] | None = self._loop.create_task(self._run())

    # --- from the socket --------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self.seen = True
        try:
            frames = self.reader.feed(data)
        except wf.WebSocketError as exc:
            self._fail(exc.code, exc.reason)
            return
        if len(data) < DRIP_READ and self.reader.buffered and self._drip_timer is None:
            self.transport.pause_reading()
            self._drip_timer = self._loop.call_later(DRIP_PAUSE, self._drip_resume)
        for opcode, payload in frames:
            if opcode == wf.OP_TEXT:
                if self.state != OPEN:
                    continue
                try:
                    text = payload.decode()
                except UnicodeDecodeError:
                    self._fail(wf.CLOSE_INVALID_DATA, "text is not UTF-8")
                    return
                self._push({"type": "websocket.receive", "text": text})
            elif opcode == wf.OP_BINARY:
                if self.state == OPEN:
                    self._push({"type": "websocket.receive", "bytes": payload})
            elif opcode == wf.OP_PING:
                if self.state == OPEN:
                    self._queue(wf.encode_frame(wf.OP_PONG, payload))
            elif opcode == wf.OP_CLOSE:
                self._client_closed(payload)
                return
            # OP_PONG: being here is enough (self.seen)

    def _drip_resume(self) -> None:
        self._drip_timer = None
        if not self.paused and self.state != CLOSED and not self.transport.is_closing():
            self.transport.resume_reading()

    def _client_closed(self, payload: bytes) -> None:
        try:
            code = wf.parse_close(payload)
        except wf.WebSocketError as exc:
            self._fail(exc.code, exc.reason)
            return
        if self.state == OPEN:
            reply = wf.CLOSE_NORMAL if code == wf.CLOSE_NO_STATUS else code
            self._write_now(wf.close_frame(reply))
        self._end(code)

    def _fail(self, code: int, reason: str) -> None:
        """Close for a protocol violation by the client."""
        logger.info("closing a websocket (%d): %s", code, reason)
        if self.state in (OPEN, CLOSING):
            self._write_now(wf.close_frame(code, reason))
        self._end(code)

    def _end(self, code: int) -> None:
        """Close the TCP connection now and tell the application, with ``code``."""
        self.close_code = code
        self.transport.close()
        self._disconnected()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
        if self._drip_timer is not None:
            self._drip_timer.cancel()
            self._drip_timer = None
        self._disconnected()

    def pause_writing(self) -> None:
        pass  # the send-buffer cap in _flush() bounds what waits

    def resume_writing(self) -> None:
        pass

    def check_alive(self, now: float, interval: float) -> None:
        """Called by the sweep: ping if idle, drop if a ping went unanswered."""
        if self.seen:
            self.seen = False
            self.ping_sent = 0.0
        elif self.state == OPEN:
            if not self.ping_sent:
                self.ping_sent = now
                self._queue(wf.encode_frame(wf.OP_PING, b""))
            elif now - self.ping_sent >= interval:
                logger.info("dropping a websocket that stopped answering pings")
                self.transport.abort()

    # --- to the application -----------------------------------------------------------

    def _push(self, event: Message) -> None:
        self.events.append(event)
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)
        if not self.paused and len(self.events) > HIGH_WATER and self.state != CLOSED:
            self.paused = True
            self.transport.pause_reading()

    def _disconnected(self) -> None:
        if self.state == CLOSED:
            return
        if self.state == CONNECTING:
            self.front.log_action("WSREJECT", self.scope["path"], self.scope["client"])
        else:
            self.front.log_action("WSDISCONNECT", self.scope["path"], self.scope["client"])
        self.state = CLOSED
        self.front.sockets.discard(self)
        self._push({"type": "websocket.disconnect", "code": self.close_code})

    # --- writing ----------------------------------------------------------------------

    def _queue(self, frame: bytes) -> None:
        """Write ``frame`` at the end of this loop iteration, with the others queued in it
        (a burst to one peer becomes one system call)."""
        out = self._out
        if not out:
            self._loop.call_soon(self._flush)
        out.append(frame)

    def _flush(self) -> None:
        out = self._out
        if out:
            self._out = []
            transport = self.transport
            if transport.is_closing():
                return
            if transport.get_write_buffer_size() > self._limit:
                # pongs and pings are queued here too, not only the application's frames
                logger.warning("dropping a websocket that does not read (%d bytes waiting)",
                               transport.get_write_buffer_size())
                transport.abort()
                return
            transport.write(out[0] if len(out) == 1 else b"".join(out))

    def _write_now(self, data: bytes) -> None:
        """Write ``data`` after whatever is queued, at once (before a close)."""
        self._flush()
        self.transport.write(data)

    async def receive(self) -> Message:
        """ASGI receive: the next event for the application."""
        events = self.events
        while not events:
            self.waiter = self._loop.create_future()
            await self.waiter
        event = events.pop(0)
        if self.paused and len(events) < LOW_WATER and self.state != CLOSED:
            self.paused = False
            if self._drip_timer is None:
                self.transport.resume_reading()
        return event

    async def send(self, message: Message) -> None:
        """ASGI send: frames, accept and close from the application."""
        kind = message["type"]
        if kind == "websocket.send":
            if self.state != OPEN:
                return  # closing or closed: the application learns via disconnect
            text = message.get("text")
            if text is not None:
                self._queue(wf.encode_frame(wf.OP_TEXT, text.encode()))
            else:
                self._queue(wf.encode_frame(wf.OP_BINARY, message.get("bytes") or b""))
        elif kind == "websocket.accept":
            self._accept(message)
        elif kind == "websocket.close":
            self._close(int(message.get("code") or 1000), str(message.get("reason") or ""))
        else:
            raise ValueError(f"unexpected ASGI message type {kind!r} on a websocket")

    def _accept(self, message: Message) -> None:
        if self.state != CONNECTING:
            return
        extra = [(bytes(k), bytes(v)) for k, v in message.get("headers") or ()]
        self._queue(wf.switching_protocols(self.key, message.get("subprotocol"), extra))
        self.state = OPEN
        self.front.log_action("WSCONNECT", self.scope["path"], self.scope["client"])

    def _close(self, code: int, reason: str) -> None:
        if self.state == CONNECTING:
            self._write_now(wf.plain_response(403, "Forbidden"))
            self.close_code = 1006
            self.transport.close()
            self._disconnected()
        elif self.state == OPEN:
            if code not in SENDABLE_CODES and not 3000 <= code <= 4999:
                code = 1000
            self._write_now(wf.close_frame(code, reason))
            self.state = CLOSING
            self.close_code = code
            self._close_timer = self._loop.call_later(CLOSE_TIMEOUT, self.transport.abort)

    async def _run(self) -> None:
        code = 1000
        try:
            await self.front.application(self.scope, self.receive, self.send)
        except asyncio.CancelledError:
            code = 1001
            raise
        except Exception:
            logger.exception("websocket application failed")
            code = 1011
        finally:
            self.task = None
            if self.state in (CONNECTING, OPEN):
                self._close(code, "")


def adopt_into_twisted(factory: Any) -> Callable[[asyncio.Transport, bytes], None]:
    """A handoff that gives a connection to a Twisted protocol factory (daphne's HTTP).

    The socket's descriptor is duplicated for Twisted, asyncio lets go of its own copy,
    and the bytes already read are replayed to the new protocol.
    """
    from twisted.internet import reactor

    def handoff(transport: asyncio.Transport, data: bytes) -> None:
        sock = transport.get_extra_info("socket")
        if sock is None:
            transport.abort()
            return
        fd = os.dup(sock.fileno())
        family = sock.family
        transport.abort()  # closes asyncio's descriptor only; Twisted holds the other
        try:
            adopted = reactor.adoptStreamConnection(fd, family, factory)
        finally:
            os.close(fd)
        if adopted is not None and data:
            adopted.protocol.dataReceived(data)

    return handoff
