"""The edge serving ASGI HTTP applications from its route table, on real sockets.

The edge runs in the test's own event loop with tiny ASGI applications and no Django
behind it (``upstream=None``: what no route serves is 404), so each case shows one part
of the HTTP side: framing, keep-alive and pipelining, the send-buffer cap for a
streaming response, errors from an application, the ``http.disconnect`` event.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from edge.options import EdgeOptions, Limits, WebSocketOptions
from edge.routes import Routes
from edge.server import Edge
from edge.types import Message, Receive, Send
from signalling.errors import ClusterUnavailable

IO_TIMEOUT = 10.0
SEND_LIMIT = 64 * 1024


class Recorder:
    """What the applications saw."""

    def __init__(self) -> None:
        self.disconnected = asyncio.Event()
        self.bodies: list[bytes] = []


async def hello(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    event = await receive()
    body = b"hello " + event["body"] + b" " + scope["query_string"]
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


async def pieces(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for part in (b"one,", b"two,", b"three"):
        await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def broken(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    raise ValueError("a bug in the application")


async def no_redis(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    raise ClusterUnavailable("redis is down")


async def silent(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    return None


def streamer(rec: Recorder) -> Any:
    async def stream(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        chunk = b"s" * 16384

        async def pump() -> None:
            while True:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await asyncio.sleep(0)

        task = asyncio.ensure_future(pump())
        try:
            msg: Message = await receive()
            assert msg["type"] == "http.disconnect"
            rec.disconnected.set()
        finally:
            task.cancel()
    return stream


async def echo_ws(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    while True:
        event = await receive()
        if event["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif event["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": event.get("text")})
        else:
            return


@pytest.fixture
async def edge_port() -> AsyncIterator[tuple[int, Recorder]]:
    rec = Recorder()
    routes = Routes()
    for path, app in (("/hello", hello), ("/pieces", pieces), ("/broken", broken),
                      ("/no-redis", no_redis), ("/silent", silent),
                      ("/stream", streamer(rec))):
        routes.add(path, app)
    options = EdgeOptions(limits=Limits(send_buffer_limit=SEND_LIMIT, max_body_size=4096),
                          websocket=WebSocketOptions(ping_interval=60))
    edge = Edge(options, echo_ws, routes, None, unavailable=(ClusterUnavailable,))
    sock = socket.create_server(("127.0.0.1", 0))
    sock.setblocking(False)
    await edge.serve(sock, 16)
    yield sock.getsockname()[1], rec
    await edge.shutdown(grace=0.5)


async def exchange(port: int, data: bytes, responses: int = 1) -> list[tuple[int, dict[
        bytes, bytes], bytes]]:
    """Send ``data`` on one connection; read ``responses`` whole responses."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    out = []
    try:
        for _ in range(responses):
            out.append(await asyncio.wait_for(read_response(reader), IO_TIMEOUT))
    finally:
        writer.close()
    return out


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[bytes, bytes], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head[:-4].split(b"\r\n")
    status = int(lines[0].split(b" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if b"content-length" in headers:
        body = await reader.readexactly(int(headers[b"content-length"]))
    elif headers.get(b"transfer-encoding") == b"chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n"))[:-2], 16)
            data = await reader.readexactly(size + 2)
            if not size:
                break
            body += data[:-2]
    else:
        body = await reader.read()
    return status, headers, body


def get(path: str, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode()


async def test_asgi_app_gets_the_body_and_query_and_answers_with_a_length(
        edge_port: tuple[int, Recorder]) -> None:
    port, _ = edge_port
    [(status, headers, body)] = await exchange(
        port, b"POST /hello?q=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nworld")
    assert (status, headers[b"content-length"], body) == (200, b"15", b"hello world q=1")


async def test_streamed_body_is_chunked(edge_port: tuple[int, Recorder]) -> None:
    port, _ = edge_port
    [(status, headers, body)] = await exchange(port, get("/pieces"))
    assert headers[b"transfer-encoding"] == b"chunked"
    assert (status, body) == (200, b"one,two,three")


async def test_keep_alive_and_pipelining_answer_in_order(
        edge_port: tuple[int, Recorder]) -> None:
    port, _ = edge_port
    requests = (get("/hello?n=1") + get("/pieces") + get("/nothing-here")
                + b"POST /hello?n=2 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok"
                + get("/hello?n=3", "Connection: close\r\n"))
    out = await exchange(port, requests, responses=5)
    assert [(s, b) for s, _, b in out] == [
        (200, b"hello  n=1"), (200, b"one,two,three"), (404, b"Not Found"),
        (200, b"hello ok n=2"), (200, b"hello  n=3")]
    assert out[-1][1][b"connection"] == b"close"


async def test_pipelined_requests_in_single_bytes(edge_port: tuple[int, Recorder]) -> None:
    port, _ = edge_port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for byte in get("/hello?a") + get("/hello?b"):
        writer.write(bytes([byte]))
        await writer.drain()
    first = await asyncio.wait_for(read_response(reader), IO_TIMEOUT)
    second = await asyncio.wait_for(read_response(reader), IO_TIMEOUT)
    writer.close()
    assert (first[2], second[2]) == (b"hello  a", b"hello  b")


@pytest.mark.parametrize(("path", "status"), [("/broken", 500), ("/silent", 500),
                                              ("/no-redis", 503)])
async def test_application_failure_is_answered_and_the_connection_goes_on(
        edge_port: tuple[int, Recorder], path: str, status: int,
        caplog: pytest.LogCaptureFixture) -> None:
    port, _ = edge_port
    out = await exchange(port, get(path) + get("/hello?after"), responses=2)
    assert out[0][0] == status
    assert b"Traceback" not in out[0][2]
    assert out[1][:1] == (200,) and out[1][2] == b"hello  after"
    if path == "/broken":
        failures = [r for r in caplog.records if "the application failed" in r.getMessage()]
        assert len(failures) == 1 and failures[0].exc_info is not None


async def test_a_stream_that_is_not_read_is_dropped_and_the_app_told(
        edge_port: tuple[int, Recorder]) -> None:
    port, rec = edge_port
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", port))
    await loop.sock_sendall(sock, get("/stream"))
    # never read: the edge's write buffer passes SEND_LIMIT and it drops the connection
    await asyncio.wait_for(rec.disconnected.wait(), IO_TIMEOUT)
    sock.close()
    [(status, _, body)] = await exchange(port, get("/hello?still"))
    assert (status, body) == (200, b"hello  still")


async def test_body_over_the_limit_is_refused_with_413(edge_port: tuple[int, Recorder]) -> None:
    port, _ = edge_port
    [(status, headers, _)] = await exchange(
        port, b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 4097\r\n\r\n")
    assert status == 413 and headers[b"connection"] == b"close"


async def test_websocket_with_any_asgi_app(edge_port: tuple[int, Recorder]) -> None:
    from websockets.asyncio.client import connect

    port, _ = edge_port
    async with connect(f"ws://127.0.0.1:{port}/peerjs", open_timeout=IO_TIMEOUT) as ws:
        await ws.send("echo me")
        assert await asyncio.wait_for(ws.recv(), IO_TIMEOUT) == "echo me"
