"""Django behind the edge: requests proxied to stock daphne over a private unix socket.

The request (head and its whole bounded body, already read under the edge's limits) is
sent to daphne with hop-by-hop headers removed and ``X-Forwarded-For``/``-Port``/
``-Proto`` set by the edge (daphne runs with ``--proxy-headers`` and only the edge can
reach its socket); whatever the client sent in those headers is dropped. The response is
parsed by httptools as it arrives and streamed to the client chunk by chunk, re-framed
for the client's connection (its own keep-alive, chunked when daphne did not give a
length). Upstream connections are kept alive and reused.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import httptools

from edge.asgi_http import HOP_BY_HOP, response_head

if TYPE_CHECKING:
    from edge.http import HttpConnection, Request

logger = logging.getLogger(__name__)

#: Client headers never passed to Django: hop-by-hop, and the forwarding headers the
#: edge sets itself.
DROPPED = HOP_BY_HOP | {b"x-forwarded-for", b"x-forwarded-port", b"x-forwarded-proto",
                        b"content-length", b"expect", b"x-real-ip"}
#: Idle upstream connections kept for reuse.
POOL_SIZE = 32


class UpstreamError(ConnectionError):
    """daphne closed or broke the connection before a whole response."""


class _Response:
    """httptools callbacks for one upstream response, writing through to the client."""

    def __init__(self, conn: HttpConnection, req: Request):
        self.conn = conn
        self.req = req
        self.parser = httptools.HttpResponseParser(self)
        self.headers: list[tuple[bytes, bytes]] = []
        self.status = 0
        self.length: int | None = None
        self.chunked = False
        self.started = False
        self.complete = False
        self.keep = req.keep_alive
        self.sent = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))  # as daphne wrote it (case kept)

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if self.status == 100:
            self.headers = []
            return
        headers = []
        for name, value in self.headers:
            lower = name.lower()
            if lower == b"content-length":
                self.length = int(value)
            elif lower not in HOP_BY_HOP:
                headers.append((name, value))
        if self.length is None and self.status not in (204, 304) and \
                self.req.method != "HEAD":
            if self.req.version == "1.1":
                self.chunked = True
            else:
                self.keep = False
        self.started = True
        self.conn.transport.write(response_head(
            self.status, headers, version=self.req.version, keep_alive=self.keep,
            length=self.length if not self.chunked else None))
        if self.req.method == "HEAD" or self.status in (204, 304):
            self.complete = True

    def on_body(self, body: bytes) -> None:
        self.sent += len(body)
        self.conn.transport.write(
            f"{len(body):x}\r\n".encode() + body + b"\r\n" if self.chunked else body)

    def on_message_complete(self) -> None:
        if self.status == 100:
            return
        if self.chunked:
            self.conn.transport.write(b"0\r\n\r\n")
        self.complete = True


class Upstream:
    """A pool of HTTP/1.1 connections to daphne's unix socket."""

    def __init__(self, path: str):
        self.path = path
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    def request_head(self, req: Request) -> bytes:
        """The request head as daphne gets it."""
        lines = [f"{req.method} ".encode() + req.target + b" HTTP/1.1"]
        lines += [name + b": " + value for name, value in req.headers
                  if name not in DROPPED]
        lines.append(b"X-Forwarded-For: " + req.client[0].encode())
        lines.append(b"X-Forwarded-Port: " + str(req.client[1]).encode())
        lines.append(b"X-Forwarded-Proto: " + req.scheme.encode())
        lines.append(b"Content-Length: " + str(sum(map(len, req.body))).encode())
        return b"\r\n".join(lines) + b"\r\n\r\n"

    async def forward(self, conn: HttpConnection, req: Request
                      ) -> tuple[int | None, int | None, bool]:
        """Proxy ``req`` and stream the answer to ``conn``; (status, bytes, keep)."""
        data = self.request_head(req) + b"".join(req.body)
        for attempt in (0, 1):
            fresh = attempt == 1 or not self._idle
            reader, writer = await self._connection(fresh)
            resp = _Response(conn, req)
            try:
                await self._exchange(reader, writer, data, resp, conn)
            except (UpstreamError, OSError) as exc:
                writer.close()
                if resp.started or conn.closing:
                    return resp.status or None, resp.sent, False
                if not fresh:
                    continue  # a kept-alive connection daphne had closed: once more
                logger.error("Django (daphne) did not answer %s %s: %s", req.method,
                             req.path, exc)
                from edge.http import plain

                conn.transport.write(plain(502, "Bad Gateway", close=not req.keep_alive))
                return 502, 11, req.keep_alive
            self._put_back(reader, writer, resp)
            return resp.status, resp.sent, resp.keep
        raise AssertionError("unreachable")

    async def _connection(self, fresh: bool
                          ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if not fresh and self._idle:
            return self._idle.pop()
        return await asyncio.open_unix_connection(self.path, limit=65536)

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        data: bytes, resp: _Response, conn: HttpConnection) -> None:
        writer.write(data)
        await writer.drain()
        while not resp.complete:
            chunk = await reader.read(65536)
            if not chunk:
                raise UpstreamError("daphne closed the connection")
            try:
                resp.parser.feed_data(chunk)
            except httptools.HttpParserError as exc:
                raise UpstreamError(f"bad response from daphne: {exc}") from exc
            if conn.closing:
                raise UpstreamError("the client went away")
            await conn.drain()

    def _put_back(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                  resp: _Response) -> None:
        reusable = (resp.parser.should_keep_alive() and resp.req.method != "HEAD"
                    and len(self._idle) < POOL_SIZE and not reader.at_eof())
        if reusable:
            self._idle.append((reader, writer))
        else:
            writer.close()

    def close(self) -> None:
        """Close the idle connections."""
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()
