"""An echo websocket on peerhub's own websocket code, for conformance runs (Autobahn).

``python -m bench.echoserver --port N`` serves ``ws://127.0.0.1:N/peerjs`` with
:class:`edge.websocket.WebSocket` (the code that serves PeerJS sockets) behind the edge's
HTTP/1.1 connection, in front of an ASGI application that sends every message back as it
came. Everything else on the port gets 404: there is no Django behind it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from edge.options import EdgeOptions, Limits, WebSocketOptions
from edge.routes import Routes
from edge.server import Edge

logger = logging.getLogger(__name__)

Message = dict[str, Any]

#: Autobahn's cases 9.1.6 and 9.2.6 send 16 MiB messages.
MAX_MESSAGE_SIZE = 64 * 1024 * 1024


async def echo(scope: dict[str, Any], receive: Callable[[], Awaitable[Message]],
               send: Callable[[Message], Awaitable[None]]) -> None:
    """Accept the socket, then send back each message as text or bytes, as it came."""
    while True:
        event = await receive()
        kind = event["type"]
        if kind == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif kind == "websocket.receive":
            if event.get("text") is not None:
                await send({"type": "websocket.send", "text": event["text"]})
            else:
                await send({"type": "websocket.send", "bytes": event.get("bytes") or b""})
        elif kind == "websocket.disconnect":
            return


def echo_options(max_size: int = MAX_MESSAGE_SIZE) -> EdgeOptions:
    """Edge options for the echo server: path ``/peerjs``, no liveness pings, no
    per-address limits or frame rate in the way."""
    buffer = 256 * 1024 * 1024
    return EdgeOptions(
        ws_path="/peerjs",
        limits=Limits(head_timeout=60.0, max_sockets_per_ip=None, send_buffer_limit=buffer),
        websocket=WebSocketOptions(max_message_size=max_size, ping_interval=3600.0,
                                   send_buffer_limit=buffer),
        access_log=False)


def echo_edge(max_size: int = MAX_MESSAGE_SIZE) -> Edge:
    """The edge serving :func:`echo` at ``/peerjs`` and nothing else."""
    return Edge(echo_options(max_size), echo, Routes(), None)


async def serve(host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT."""
    edge = echo_edge()
    sock = socket.create_server((host, port), reuse_port=False)
    sock.setblocking(False)
    await edge.serve(sock, backlog=128)
    print(f"echo websocket on ws://{host}:{port}/peerjs", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await edge.shutdown(grace=1.0)


def main(argv: list[str] | None = None) -> None:
    """The command line."""
    ap = argparse.ArgumentParser(prog="python -m bench.echoserver", description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
