"""A raw HTTP/1.1 client for tests of the 0.3.x XHR stream: one request, the response
read line by line as it arrives (chunked or with a Content-Length), on asyncio sockets."""

from __future__ import annotations

import asyncio

from tests.servers import LiveServer

IO_TIMEOUT = 10.0


class HttpStream:
    """One request's response, readable as it streams in."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.status = 0
        self.headers: dict[str, str] = {}
        self._body = b""
        self._chunked = False
        self._left: int | None = None  # Content-Length bytes not yet read
        self.ended = False

    async def read_head(self) -> None:
        """Read the status line and headers."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), IO_TIMEOUT)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split(" ", 2)[1])
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                self.headers[name.strip().lower()] = value.strip()
        self._chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
        if "content-length" in self.headers:
            self._left = int(self.headers["content-length"])
        self.ended = self._left == 0

    async def _more(self) -> bool:
        """Read the next piece of the body into the buffer; False at its end."""
        if self.ended:
            return False
        if self._chunked:
            size = int((await self.reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            data = await self.reader.readexactly(size + 2)
            if size == 0:
                self.ended = True
                return False
            self._body += data[:-2]
            return True
        if self._left is not None:
            data = await self.reader.read(self._left)
            self._left -= len(data)
            self.ended = self._left == 0 or not data
        else:
            data = await self.reader.read(65536)
            self.ended = not data
        self._body += data
        return bool(data)

    async def line(self, timeout: float = IO_TIMEOUT) -> bytes:
        """The next line of the body (with its newline); ``b""`` once the body ended."""
        async with asyncio.timeout(timeout):
            while b"\n" not in self._body:
                if not await self._more():
                    rest, self._body = self._body, b""
                    return rest
            line, _, self._body = self._body.partition(b"\n")
            return line + b"\n"

    async def rest(self, timeout: float = IO_TIMEOUT) -> bytes:
        """Everything until the body ends."""
        async with asyncio.timeout(timeout):
            while await self._more():
                pass
        rest, self._body = self._body, b""
        return rest

    def close(self) -> None:
        """Drop the connection."""
        self.writer.close()


def request_bytes(server: LiveServer, method: str, path: str, body: bytes = b"",
                  headers: dict[str, str] | None = None) -> bytes:
    """An HTTP/1.1 request."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {server.host}:{server.port}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def open_stream(server: LiveServer, peer_id: str, token: str, key: str = "peerjs",
                      headers: dict[str, str] | None = None) -> HttpStream:
    """``POST {path}{key}/{id}/{token}/id?i=0`` with an empty body; its head read."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(request_bytes(server, "POST", f"{server.path}{key}/{peer_id}/{token}/id?i=0",
                               b"", headers))
    stream = HttpStream(reader, writer)
    await stream.read_head()
    return stream
