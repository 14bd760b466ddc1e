"""A tiny PeerJS-protocol websocket client for tests (raw frames, no WebRTC)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.servers import LiveServer
from tests.waiting import TIMEOUT, until


async def open_socket(server: LiveServer, peer_id: str, token: str = "tok",
                      key: str = "peerjs", **kwargs: Any) -> ClientConnection:
    """Open a websocket for ``peer_id`` without reading anything.

    The client sends no keepalive pings of its own (the server pings it); on a loaded
    machine they would time out in the test process, not in the server.
    """
    kwargs.setdefault("ping_interval", None)
    return await connect(server.ws_url(peer_id, token, key), max_size=None,
                         open_timeout=10, **kwargs)


async def join(server: LiveServer, peer_id: str, token: str = "tok",
               key: str = "peerjs") -> ClientConnection:
    """Open a websocket and require OPEN as its first frame."""
    ws = await open_socket(server, peer_id, token, key)
    assert await recv(ws) == {"type": "OPEN"}
    return ws


async def recv(ws: ClientConnection, timeout: float = 5.0) -> Any:
    """The next frame, parsed as JSON."""
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def send(ws: ClientConnection, **frame: Any) -> None:
    """Send ``frame`` as a JSON text frame."""
    await ws.send(json.dumps(frame))


async def nothing_arrives(ws: ClientConnection, within: float = 0.3) -> bool:
    """True if no frame arrives on ``ws`` within ``within`` seconds."""
    try:
        await asyncio.wait_for(ws.recv(), within)
    except TimeoutError:
        return True
    return False


async def closed_with(ws: ClientConnection, timeout: float = 5.0) -> int | None:
    """Wait for the server to close ``ws``; return the close code."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    except ConnectionClosed:
        pass
    return ws.close_code


def id_taken(frame: Any) -> bool:
    """The server still counts another socket as holding the id."""
    return isinstance(frame, dict) and frame.get("type") == "ID-TAKEN"


async def rejoin(server: LiveServer, peer_id: str, token: str = "tok",
                         key: str = "peerjs", still_held: Callable[[Any], bool] = id_taken,
                         timeout: float = TIMEOUT) -> ClientConnection:
    """Join as ``peer_id`` once the server has let its previous holder go.

    A close or a LEAVE reaches the server's directory (and, in a cluster, the other
    nodes) asynchronously, so an attempt may still be refused: retry while the first
    frame satisfies ``still_held``; any other refusal fails at once.
    """
    async def attempt() -> ClientConnection | None:
        ws = await open_socket(server, peer_id, token, key)
        first = await recv(ws)
        if first == {"type": "OPEN"}:
            return ws
        await ws.close()
        assert still_held(first), f"{peer_id} refused: {first}"
        return None

    ws: ClientConnection = await until(attempt, timeout, interval=0.2,
                                       what=f"{peer_id} free again")
    return ws
