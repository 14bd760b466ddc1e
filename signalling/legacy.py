"""The classic 0.3.x client's HTTP transport: the XHR stream and the POST senders.

A 0.3.x peer opens its websocket and ``POST {key}/{id}/{token}/id`` (a long-lived
stream) at once, and sends signalling over ``POST .../offer|candidate|answer|leave``
until the websocket is open. The stream registers like a websocket would; the
websocket that follows with the same token takes over silently.

A stream is bounded in bytes: frames wait in the endpoint only while the server's
``send`` is busy (the client does not read); past ``limit`` bytes waiting the stream is
ended, its frames dropped, and the id freed, as a websocket that does not read is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from signalling.httpio import Message, Receive, Send
from signalling.metrics import limit_hit
from signalling.protocol import STREAM_PADDING

logger = logging.getLogger(__name__)

_PADDING = STREAM_PADDING.encode()
#: Seconds an ended stream's last frames get to reach a client before the app returns.
FINISH_TIMEOUT = 5.0


class StreamEndpoint:
    """A registered peer whose frames go down a streaming HTTP response."""

    __slots__ = ("key", "peer_id", "token", "queue_limit", "limit", "end_reason",
                 "frames", "_frames", "_bytes", "_wake", "_ended")

    def __init__(self, key: str, peer_id: str, token: str, limit: int,
                 queue_limit: int = 0) -> None:
        self.key = key
        self.peer_id = peer_id
        self.token = token
        self.queue_limit = queue_limit
        self.limit = limit
        self.end_reason = ""
        self.frames = 0  # frames accepted for the client
        self._frames: list[bytes] = []
        self._bytes = 0
        self._wake = asyncio.Event()
        self._ended = asyncio.Event()

    @property
    def pending_bytes(self) -> int:
        """Bytes of frames waiting to be written."""
        return self._bytes

    @property
    def ended(self) -> bool:
        """Tell whether the stream was ended (its last frames may still be waiting)."""
        return self._ended.is_set()

    async def deliver(self, frame: str) -> None:
        """Queue one frame for the stream; past the byte limit the stream is ended."""
        self.push(frame)

    def push(self, frame: str) -> None:
        """Queue ``frame`` (a line of the stream) unless the stream ended."""
        if self._ended.is_set():
            return
        line = frame.encode() + b"\n"
        if self._bytes + len(line) > self.limit:
            logger.info("ending a 0.3.x stream that does not read (%d bytes waiting)",
                        self._bytes)
            limit_hit(self.key, "send buffer", "0.3.x stream")
            self._frames.clear()
            self._bytes = 0
            self.end("send buffer limit")
            return
        self._frames.append(line)
        self.frames += 1
        self._bytes += len(line)
        self._wake.set()

    async def shut(self, frame: str | None, code: int, reason: str = "") -> None:
        """Write ``frame`` (if any) and end the stream."""
        if frame is not None:
            self.push(frame)
        self.end(reason or "closed by server")

    def end(self, reason: str) -> None:
        """End the stream (what is already queued is still written)."""
        if not self._ended.is_set():
            self.end_reason = reason
            self._ended.set()
            self._wake.set()

    async def wait_ended(self) -> None:
        """Return once the stream was ended, by either side."""
        await self._ended.wait()

    async def next_chunk(self) -> bytes | None:
        """Every frame waiting, as one chunk; None once the stream ended and is empty."""
        while not self._frames:
            if self._ended.is_set():
                return None
            self._wake.clear()
            await self._wake.wait()
        chunk = b"".join(self._frames)
        self._frames.clear()
        self._bytes = 0
        return chunk


async def run_stream(endpoint: StreamEndpoint, receive: Receive, send: Send,
                     headers: list[tuple[bytes, bytes]],
                     on_end: Callable[[], Awaitable[object]]) -> None:
    """Serve ``endpoint`` as a 200 stream (padding, then its frames) until it ends.

    The stream ends when the client goes away, when the hub shuts the endpoint, or when
    its frames pass the byte limit; ``on_end`` (which frees the id) runs at that moment,
    even while a write to a client that does not read is still pending.
    """
    watcher = asyncio.ensure_future(_end_on_disconnect(endpoint, receive))
    writer = asyncio.ensure_future(_write(endpoint, send, headers))
    try:
        await endpoint.wait_ended()
        await on_end()
        try:
            await asyncio.wait_for(asyncio.shield(writer), FINISH_TIMEOUT)
        except TimeoutError:
            logger.info("a 0.3.x stream's last frames were not taken; leaving it")
    finally:
        writer.cancel()
        watcher.cancel()


async def _write(endpoint: StreamEndpoint, send: Send,
                 headers: list[tuple[bytes, bytes]]) -> None:
    try:
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await _body(send, _PADDING, True)
        while (chunk := await endpoint.next_chunk()) is not None:
            await _body(send, chunk, True)
        if endpoint.end_reason != "closed by client":
            await _body(send, b"", False)
    except OSError:  # the server says the connection is gone (ASGI 2.4)
        endpoint.end("closed by client")


async def _body(send: Send, body: bytes, more: bool) -> None:
    await send({"type": "http.response.body", "body": body, "more_body": more})


async def _end_on_disconnect(endpoint: StreamEndpoint, receive: Receive) -> None:
    event: Message = {"type": ""}
    while event["type"] != "http.disconnect":
        event = await receive()
    endpoint.end("closed by client")


class _Hub(Protocol):
    async def send_to(self, key: str, peer_id: str, frame: str) -> None: ...


class Sender:
    """The sender of a 0.3.x ``POST`` message: frames for it (an EXPIRE) go wherever its
    id is registered, which may be another transport or another node."""

    __slots__ = ("hub", "key", "peer_id", "token", "queue_limit")

    def __init__(self, hub: _Hub, key: str, peer_id: str, token: str,
                 queue_limit: int = 0) -> None:
        self.hub = hub
        self.key = key
        self.peer_id = peer_id
        self.token = token
        self.queue_limit = queue_limit

    async def deliver(self, frame: str) -> None:
        """Route ``frame`` to the peer's registered transport."""
        await self.hub.send_to(self.key, self.peer_id, frame)

    async def shut(self, frame: str | None, code: int, reason: str = "") -> None:
        """A POST sender has nothing to close."""
