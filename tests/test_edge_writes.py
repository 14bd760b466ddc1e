"""When the edge's websocket writes: a lone message at once, a burst in one write.

A real socket pair and a real asyncio transport; the application looks at the client's
end of the socket right after each ``send`` returns, before the loop turns.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from edge.options import WebSocketOptions
from edge.websocket import WebSocket
from peerhub import wsframes as wf
from tests.rawframes import client_frame
from tests.waiting import until


class Host:
    """The accepting server's side, as the websocket sees it."""

    def __init__(self) -> None:
        self.sockets: set[WebSocket] = set()
        self.loop: asyncio.AbstractEventLoop | None = None  # the running loop
        self.more_waiting = False

    def log_action(self, verb: str, path: str, client: tuple[str, int]) -> None:
        pass

    def release(self, ip: str) -> None:
        pass


def readable(sock: socket.socket) -> bytes:
    """What the client could read right now (nothing: b"")."""
    try:
        return sock.recv(1 << 20)
    except BlockingIOError:
        return b""


async def test_a_lone_message_goes_out_at_once_and_a_burst_at_the_end_of_the_turn() -> None:
    loop = asyncio.get_running_loop()
    server_end, client = socket.socketpair()
    client.setblocking(False)
    on_wire: list[bytes] = []  # what the client could read after each send

    async def echo(scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        while (event := await receive())["type"] == "websocket.receive":
            # "x3:abc" sends a, b and c for one event (as a run of frames from another
            # node is handed over); anything else is echoed
            text = event["text"]
            for part in (text[3:] if text.startswith("x3:") else [text]):
                await send({"type": "websocket.send", "text": part})
                on_wire.append(readable(client))

    transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, server_end)
    scope = {"type": "websocket", "path": "/peerjs", "client": ("127.0.0.1", 1)}
    ws = WebSocket(Host(), WebSocketOptions(), transport, scope, b"k" * 24, echo)
    transport.set_protocol(ws)
    got = bytearray()

    async def read_until(size: int) -> bool:
        got.extend(readable(client))
        return len(got) >= size

    head = wf.switching_protocols(b"k" * 24, None, [])
    await until(lambda: read_until(len(head)), interval=0.01)
    assert bytes(got) == head
    try:
        client.send(client_frame(wf.OP_TEXT, b"lone"))
        await until(lambda: on_wire, interval=0.01)
        assert on_wire == [wf.encode_frame(wf.OP_TEXT, b"lone")]  # before the loop turned

        on_wire.clear()
        client.send(b"".join(client_frame(wf.OP_TEXT, t) for t in (b"a", b"b", b"c")))
        await until(lambda: len(on_wire) == 3, interval=0.01)
        assert on_wire == [b"", b"", b""]  # held while the application had more to read
        burst = b"".join(wf.encode_frame(wf.OP_TEXT, t) for t in (b"a", b"b", b"c"))
        got.clear()
        await until(lambda: read_until(len(burst)), interval=0.01)
        assert bytes(got) == burst

        # Several sends for one event: the first at once, the rest at the turn's end
        # (not a system call each).
        on_wire.clear()
        client.send(client_frame(wf.OP_TEXT, b"x3:def"))
        await until(lambda: len(on_wire) == 3, interval=0.01)
        assert on_wire == [wf.encode_frame(wf.OP_TEXT, b"d"), b"", b""]
        rest = b"".join(wf.encode_frame(wf.OP_TEXT, t) for t in (b"e", b"f"))
        got.clear()
        await until(lambda: read_until(len(rest)), interval=0.01)
        assert bytes(got) == rest
    finally:
        transport.abort()
        client.close()
        await until(lambda: ws.task is None, interval=0.01)
