"""The classic 0.3.x client's HTTP transport: the XHR stream and the POST routes.

A 0.3.x peer opens its websocket and ``POST {key}/{id}/{token}/id`` (a long-lived
stream) at once, and sends signalling over ``POST .../offer|candidate|answer|leave``
until the websocket is open. The stream registers like a websocket would; the
websocket that follows with the same token takes over silently.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

logger = logging.getLogger(__name__)

_STREAM_BUFFER = 1000


class StreamEndpoint:
    """A registered peer whose frames go down a streaming HTTP response."""

    def __init__(self, key: str, peer_id: str, token: str) -> None:
        self.key = key
        self.peer_id = peer_id
        self.token = token
        self.queue_limit = 0
        self.frames: asyncio.Queue[str | None] = asyncio.Queue(_STREAM_BUFFER)

    async def deliver(self, frame: str) -> None:
        """Queue one frame for the stream; a stream that is not read is closed."""
        try:
            self.frames.put_nowait(frame)
        except asyncio.QueueFull:
            logger.info("0.3.x stream not read; closing it")
            self._end()

    async def shut(self, frame: str | None, code: int, reason: str = "") -> None:
        """Write ``frame`` (if any) and end the stream."""
        if frame is not None:
            await self.deliver(frame)
        self._end()

    def _end(self) -> None:
        while self.frames.full():
            self.frames.get_nowait()
        self.frames.put_nowait(None)


class _Hub(Protocol):
    async def send_to(self, key: str, peer_id: str, frame: str) -> None: ...


class Sender:
    """The sender of a 0.3.x ``POST`` message: frames for it (an EXPIRE) go wherever its
    id is registered, which may be another transport or another node."""

    def __init__(self, hub: _Hub, key: str, peer_id: str, token: str) -> None:
        self.hub = hub
        self.key = key
        self.peer_id = peer_id
        self.token = token
        self.queue_limit = 0

    async def deliver(self, frame: str) -> None:
        """Route ``frame`` to the peer's registered transport."""
        await self.hub.send_to(self.key, self.peer_id, frame)

    async def shut(self, frame: str | None, code: int, reason: str = "") -> None:
        """A POST sender has nothing to close."""
