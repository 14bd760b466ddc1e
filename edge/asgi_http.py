"""One HTTP request served by an ASGI application, on the edge's connection.

The application gets the whole (bounded) request body in its first ``http.request``
event; later ``receive()`` calls wait until the response is done or the client goes
away, then return ``http.disconnect`` (how a long-lived response such as the 0.3.x XHR
stream learns its client left). The response is framed here: ``Content-Length`` when
the application set it or sent its body in one message, chunked otherwise.

Every write checks the send-buffer cap: a client that does not read what a streaming
response sends is dropped, like a websocket that does not read.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from edge.http import REASONS, plain
from edge.types import ASGIApp, Message

if TYPE_CHECKING:
    from edge.http import HttpConnection, Request

logger = logging.getLogger(__name__)

HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"upgrade",
                        b"proxy-connection", b"te", b"trailer"})


_TITLED: dict[bytes, bytes] = {}


def titled(name: bytes) -> bytes:
    """``access-control-allow-origin`` -> ``Access-Control-Allow-Origin`` (cached).

    Header names are case-insensitive, but clients that keep them in plain dictionaries
    exist; the names go out as peerjs-server (Express) and daphne (Twisted) sent them.
    """
    out = _TITLED.get(name)
    if out is None:
        out = b"-".join(part[:1].upper() + part[1:] for part in name.split(b"-"))
        if len(_TITLED) < 1024:
            _TITLED[name] = out
    return out


class ResponseError(RuntimeError):
    """The application broke the ASGI HTTP message order."""


def response_head(status: int, headers: list[tuple[bytes, bytes]], *, version: str,
                  keep_alive: bool, length: int | None) -> bytes:
    """A response head; ``length`` None means chunked (HTTP/1.1) or close-delimited."""
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'OK' if status < 300 else '')}"
             .encode().rstrip()]
    lines += [name + b": " + value for name, value in headers]
    if length is not None:
        lines.append(b"Content-Length: " + str(length).encode())
    elif version == "1.1":
        lines.append(b"Transfer-Encoding: chunked")
    if not keep_alive:
        lines.append(b"Connection: close")
    elif version == "1.0":
        lines.append(b"Connection: keep-alive")
    return b"\r\n".join(lines) + b"\r\n\r\n"


class AsgiCycle:
    """The ASGI side of one request/response on ``conn``."""

    def __init__(self, conn: HttpConnection, req: Request):
        self.conn = conn
        self.req = req
        self.status: int | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.started = False  # head written
        self.finished = False
        self.length: int | None = None  # announced Content-Length
        self.chunked = False
        self.sent = 0
        self.body_given = False
        self.keep = req.keep_alive
        self.done: asyncio.Future[None] | None = None  # made when receive() must wait

    async def receive(self) -> Message:
        """ASGI receive: the body once, then ``http.disconnect`` when it is over."""
        if not self.body_given:
            self.body_given = True
            return {"type": "http.request", "body": b"".join(self.req.body),
                    "more_body": False}
        if not self.finished and not self.conn.closing:
            if self.done is None:
                self.done = self.conn.loop.create_future()
            await asyncio.wait([self.conn.when_lost(), self.done],
                               return_when=asyncio.FIRST_COMPLETED)
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        """ASGI send: ``http.response.start``, then ``http.response.body`` messages."""
        kind = message["type"]
        if kind == "http.response.start":
            if self.status is not None:
                raise ResponseError("http.response.start sent twice")
            self.status = int(message["status"])
            self.headers = [(bytes(k).lower(), bytes(v)) for k, v in
                            message.get("headers") or ()]
            return
        if kind != "http.response.body":
            raise ResponseError(f"unexpected ASGI message type {kind!r} on HTTP")
        if self.status is None:
            raise ResponseError("http.response.body before http.response.start")
        if self.finished:
            return
        body = bytes(message.get("body") or b"")
        more = bool(message.get("more_body"))
        # the head goes with the first body part: one write, one system call
        self._write(body, more, b"" if self.started else self._start(body, more))
        if not more:
            self.finished = True
            if self.done is not None and not self.done.done():
                self.done.set_result(None)

    def _start(self, body: bytes, more: bool) -> bytes:
        """The response head, once the first body message says how to frame it."""
        self.started = True
        headers = []
        for name, value in self.headers:
            if name == b"content-length":
                self.length = int(value)
            elif name not in HOP_BY_HOP:
                headers.append((titled(name), value))
            elif name == b"connection" and b"close" in value.lower():
                self.keep = False
        if self.length is None and not more:
            self.length = len(body)
        if self.length is None:
            if self.req.version == "1.1":
                self.chunked = True
            else:
                self.keep = False
        assert self.status is not None
        return response_head(self.status, headers, version=self.req.version,
                             keep_alive=self.keep, length=self.length)

    def _write(self, body: bytes, more: bool, head: bytes = b"") -> None:
        conn = self.conn
        if conn.transport.is_closing():
            return
        self.sent += len(body)
        if self.chunked:
            out = (f"{len(body):x}\r\n".encode() + body + b"\r\n") if body else b""
            if not more:
                out += b"0\r\n\r\n"
        else:
            out = body
        if self.req.method == "HEAD":
            out = b""
        if head:
            out = head + out
        if out and not conn.over_send_limit():  # what waits from earlier writes
            conn.transport.write(out)


async def serve_asgi(app: ASGIApp, conn: HttpConnection, req: Request,
                     unavailable: tuple[type[BaseException], ...]
                     ) -> tuple[int | None, int | None, bool]:
    """Run ``app`` for ``req``; return (status, body bytes, keep the connection)."""
    cycle = AsgiCycle(conn, req)
    try:
        await app(req.http_scope(conn.server), cycle.receive, cycle.send)
    except asyncio.CancelledError:
        raise
    except unavailable as exc:
        logger.warning("%s %s: backing store unavailable: %s", req.method, req.path, exc)
        return _failed(cycle, 503, "Service Unavailable: try again shortly")
    except Exception:
        logger.exception("%s %s: the application failed", req.method, req.path)
        return _failed(cycle, 500, "Internal Server Error")
    if not cycle.started:
        logger.error("%s %s: the application sent no response", req.method, req.path)
        return _failed(cycle, 500, "Internal Server Error")
    if not cycle.finished:
        return cycle.status, cycle.sent, False  # an unfinished body: end by closing
    length_ok = cycle.length is None or cycle.length == cycle.sent or req.method == "HEAD"
    return cycle.status, cycle.sent, cycle.keep and length_ok


def _failed(cycle: AsgiCycle, status: int, text: str) -> tuple[int | None, int | None, bool]:
    """Answer ``status`` if nothing was sent yet; otherwise the connection must end."""
    if cycle.started:
        return cycle.status, cycle.sent, False
    cycle.conn.transport.write(plain(status, text, close=not cycle.keep))
    return status, len(text), cycle.keep
