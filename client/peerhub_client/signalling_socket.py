"""The websocket to the PeerServer: ordered sends, JSON frames, HEARTBEAT, close detection."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from .events import TaskSet
from .protocol import MessageType, message

__all__ = ["SignallingSocket", "SocketError"]

log = logging.getLogger(__name__)

OPEN_TIMEOUT = 10.0


class SocketError(ConnectionError):
    """The websocket to the PeerServer could not be opened or broke."""


class SignallingSocket:
    """One websocket session; messages sent before it is connected are queued in order."""

    def __init__(
        self,
        on_message: Callable[[dict[str, Any]], None],
        on_close: Callable[[str], None],
        *,
        ping_interval: float = 5.0,
    ) -> None:
        self._on_message = on_message
        self._on_close = on_close
        self._ping_interval = ping_interval
        self._outbox: asyncio.Queue[str] = asyncio.Queue()
        self._ws: ClientConnection | None = None
        self._tasks = TaskSet("signalling")
        self.closed = False

    async def connect(self, url: str) -> None:
        """Open the websocket and start reading, writing and heart-beating."""
        try:
            self._ws = await asyncio.wait_for(connect(url, open_timeout=None), OPEN_TIMEOUT)
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            self.closed = True
            raise SocketError(f"could not open the server websocket: {exc}") from exc
        self._tasks.spawn(self._read(self._ws), "read")
        self._tasks.spawn(self._write(self._ws), "write")
        self._tasks.spawn(self._heartbeat(), "heartbeat")

    def send(self, msg: dict[str, Any]) -> None:
        """Queue ``msg`` for sending (in order) once the socket is connected."""
        if self.closed:
            log.debug("dropping %s: socket closed", msg.get("type"))
            return
        self._outbox.put_nowait(json.dumps(msg, separators=(",", ":")))

    async def close(self) -> None:
        """Close locally; ``on_close`` is not called."""
        self.closed = True
        self._tasks.cancel_all()
        if self._ws is not None:
            await self._ws.close()

    async def _read(self, ws: ClientConnection) -> None:
        reason = "closed by server"
        try:
            async for frame in ws:
                self._dispatch(frame)
        except ConnectionClosed as exc:
            reason = f"connection lost: {exc}"
        self._lost(reason)

    def _dispatch(self, frame: str | bytes) -> None:
        try:
            msg = json.loads(frame)
        except ValueError:
            log.warning("ignoring a non-JSON frame from the server")
            return
        if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
            log.warning("ignoring a server frame without a type")
            return
        self._on_message(msg)

    def _lost(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self._tasks.cancel_all()
        self._on_close(reason)

    async def _write(self, ws: ClientConnection) -> None:
        try:
            while True:
                text = await self._outbox.get()
                await ws.send(text)
        except ConnectionClosed:
            log.debug("writer stopped: connection closed")

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self._ping_interval)
            self.send(message(MessageType.HEARTBEAT))
