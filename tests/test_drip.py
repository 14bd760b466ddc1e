"""A frame trickled in tiny writes: the edge asks the kernel (SO_RCVLOWAT) to wake it
only when the frame can be finished, or, where it cannot (TLS), reads such a socket at
most every DRIP_PAUSE seconds; either way not once per write, the message still arrives
whole and soon, and an honest client of the same server is served meanwhile.

The edge (edge.server.Edge) runs in this test's event loop in front of the echo
application of bench/echoserver.py; the client is a plain blocking socket in a thread,
so that its writes are paced independently of the loop.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bench import echoserver
from edge import http as edge_http
from edge import trickle
from edge import websocket as edge_ws
from edge.server import Edge
from peerhub import wsframes as wf
from tests.rawframes import client_frame
from tests.waiting import eventually

WRITES = 1500  # 10-byte writes, one every PAUSE seconds or so
PAUSE = 0.0005


Read = tuple[int, bool, int, bool]


class Counted(edge_ws.WebSocket):
    """The edge's websocket, noting each read it gets: its size, whether it then held
    the socket off, the SO_RCVLOWAT it then left set, and whether the frame in progress
    was then known to drip (tiny segments, by the kernel's counts)."""

    __slots__ = ()
    reads: list[Read] = []
    by_socket: dict[int, list[Read]] = {}
    sockets: dict[int, edge_ws.WebSocket] = {}

    def data_received(self, data: bytes) -> None:
        held = self._drip_timer is not None
        super().data_received(data)
        read = (len(data), not held and self._drip_timer is not None, self._lowat,
                self._drip_mark is edge_ws.DRIPPING)
        Counted.reads.append(read)
        Counted.by_socket.setdefault(id(self), []).append(read)
        Counted.sockets[id(self)] = self


@pytest.fixture
async def echo_edge(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Edge, int]]:
    """An echo edge whose websockets note their reads, and its port."""
    Counted.reads = []
    Counted.by_socket = {}
    Counted.sockets = {}
    monkeypatch.setattr(edge_http, "WebSocket", Counted)
    server = echoserver.echo_edge()
    sock = socket.create_server(("127.0.0.1", 0))
    sock.setblocking(False)
    port = sock.getsockname()[1]
    await server.serve(sock, backlog=16)
    try:
        yield server, port
    finally:
        await server.shutdown(grace=1.0)


@pytest.fixture(params=["low-water", "hold"])
async def echo_port(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
                    echo_edge: tuple[Edge, int]) -> int:
    """The echo edge's port; with "hold", as if SO_RCVLOWAT could not be used (TLS)."""
    if request.param == "hold":
        monkeypatch.setattr(trickle, "low_water_socket", lambda transport: None)
    return echo_edge[1]


def handshake(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(f"GET /peerjs HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                 f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                 f"Sec-WebSocket-Version: 13\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 101 ")
    return sock


def recv_frame(sock: socket.socket, size: int) -> bytes:
    """One unmasked server frame with a payload of ``size`` bytes (16-bit length)."""
    data = b""
    while len(data) < 4 + size:
        chunk = sock.recv(65536)
        assert chunk, "closed"
        data += chunk
    assert data[0] == 0x80 | wf.OP_BINARY and data[1] == 126
    assert int.from_bytes(data[2:4], "big") == size
    return data[4:]


def drip(port: int, payload: bytes, out: dict[str, Any],
         done: threading.Event | None = None) -> None:
    """Send ``payload`` as one frame in 10-byte writes and read its echo; with ``done``,
    keep the socket open until it is set."""
    sock = handshake(port)
    frame = client_frame(wf.OP_BINARY, payload)
    for i in range(0, len(frame), 10):
        sock.sendall(frame[i:i + 10])
        time.sleep(PAUSE)
    out["last_byte"] = time.monotonic()
    out["echo"] = recv_frame(sock, len(payload))
    out["echoed"] = time.monotonic()
    if done is not None:
        done.wait(30)
    sock.close()


def honest(port: int, stop: threading.Event, out: dict[str, Any]) -> None:
    """Echo round trips of small whole frames until ``stop``; their times in ``out``."""
    sock = handshake(port)
    times: list[float] = out.setdefault("round_trips", [])
    while not stop.is_set() or not times:
        payload = os.urandom(200)
        started = time.monotonic()
        sock.sendall(client_frame(wf.OP_BINARY, payload))
        assert recv_frame(sock, len(payload)) == payload
        times.append(time.monotonic() - started)
        stop.wait(0.02)
    sock.close()


async def test_a_trickled_frame_is_read_in_few_reads_and_arrives_whole(
        echo_port: int, request: pytest.FixtureRequest) -> None:
    payload = os.urandom(WRITES * 10 - 8)  # header (4) and mask (4) fill the first write
    out: dict[str, Any] = {}
    other: dict[str, Any] = {}
    stop = threading.Event()
    dripper = threading.Thread(target=drip, args=(echo_port, payload, out))
    meanwhile = threading.Thread(target=honest, args=(echo_port, stop, other))
    meanwhile.start()
    dripper.start()
    deadline = time.monotonic() + 60
    while dripper.is_alive() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    stop.set()
    while meanwhile.is_alive() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    dripper.join(1)
    meanwhile.join(1)
    assert out.get("echo") == payload
    # the dripping socket's reads: the one that received the most bytes
    dripped = max(Counted.by_socket.values(), key=lambda reads: sum(r[0] for r in reads))
    assert sum(r[0] for r in dripped) == WRITES * 10
    reads = len(dripped)
    if request.node.callspec.params["echo_port"] == "low-water":
        # Woken only when the rest of the frame is there, or when the kernel's receive
        # buffer fills with the tiny segments first: a few reads, not 1,500.
        assert reads <= WRITES // 50, reads
        assert any(level > trickle.EVERY_BYTE for _, _, level, _ in dripped)
        assert dripped[-1][2] == trickle.EVERY_BYTE  # reset once the frame is whole
    else:
        # Read write by write, this would be about 1,500 reads; at most one small read
        # and one larger one per DRIP_PAUSE it is about 2 * 1.5 s / 0.05 s = 60.
        assert reads <= WRITES // 5, reads
        assert 1 <= sum(held for _, held, _, _ in dripped) <= reads
    # the message is not held back for long after its last byte (a busy machine allowed)
    waited = out["echoed"] - out["last_byte"]
    assert waited < max(edge_ws.DRIP_PAUSE, trickle.DRIP_HOLD) + 2.0, waited
    # the honest client's round trips went on during the drip, none held back
    assert len(other["round_trips"]) >= 10, other
    assert max(other["round_trips"]) < 2.0, other


async def test_a_whole_frame_in_one_write_is_not_held(echo_port: int) -> None:
    def one_write() -> float:
        sock = handshake(echo_port)
        payload = os.urandom(3000)
        started = time.monotonic()
        sock.sendall(client_frame(wf.OP_BINARY, payload))
        assert recv_frame(sock, len(payload)) == payload
        sock.close()
        return time.monotonic() - started

    await asyncio.to_thread(one_write)
    assert Counted.reads and not any(held for _, held, _, _ in Counted.reads)
    assert all(level == trickle.EVERY_BYTE for _, _, level, _ in Counted.reads)


async def test_a_header_written_apart_from_its_payload_is_not_held(
        echo_port: int, request: pytest.FixtureRequest) -> None:
    """Clients that write a frame's header and its payload in two system calls send the
    header in a segment of its own: a small read that leaves the frame unfinished, but
    not a drip, so the payload is read as soon as it is there."""
    def two_writes() -> None:
        sock = handshake(echo_port)
        for _ in range(3):
            payload = os.urandom(20000)
            frame = client_frame(wf.OP_BINARY, payload)
            sock.sendall(frame[:8])  # 16-bit length header and masking key
            time.sleep(0.05)
            sock.sendall(frame[8:])
            assert recv_frame(sock, len(payload)) == payload
        sock.close()

    await asyncio.to_thread(two_writes)
    assert any(size == 8 for size, _, _, _ in Counted.reads)  # the header read alone
    assert not any(dripping for _, _, _, dripping in Counted.reads)
    if request.node.callspec.params["echo_port"] == "hold":
        # SO_RCVLOWAT unavailable (TLS): the fallback holds after a small read
        return
    assert not any(held for _, held, _, _ in Counted.reads)


def buffer_is_fixed(ws: edge_ws.WebSocket) -> bool:
    """Whether ``ws``'s receive buffer is fixed (SO_RCVBUF set): Linux then caps
    SO_RCVLOWAT at half the buffer, where it otherwise grows the buffer to fit it."""
    sock = ws._lowsock or ws.transport.get_extra_info("socket")
    assert sock is not None
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 4 * trickle.DRIP_RCVBUF)
    try:
        level = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT)
        size = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    finally:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, trickle.EVERY_BYTE)
    if level < 4 * trickle.DRIP_RCVBUF:
        assert (level, size) == (trickle.DRIP_RCVBUF, 2 * trickle.DRIP_RCVBUF)
        return True
    return False


async def test_a_dripped_frame_is_held_with_a_fixed_buffer(
        echo_edge: tuple[Edge, int]) -> None:
    """A frame in tiny segments is told from a slow link by the kernel's counts: the
    socket's receive buffer is fixed and the socket is read once per DRIP_HOLD, so the
    kernel collapses the queued segments; an honest client beside it is neither."""
    server, port = echo_edge
    payload = os.urandom(3000 * 10 - 8)
    out: dict[str, Any] = {}
    other: dict[str, Any] = {}
    stop, done = threading.Event(), threading.Event()
    dripper = threading.Thread(target=drip, args=(port, payload, out, done))
    meanwhile = threading.Thread(target=honest, args=(port, stop, other))
    meanwhile.start()
    dripper.start()

    def echoed() -> None:
        assert "echo" in out or not dripper.is_alive()

    try:
        await eventually(echoed, timeout=60)
        assert out.get("echo") == payload
        dripped_id = max(Counted.by_socket,
                         key=lambda k: sum(r[0] for r in Counted.by_socket[k]))
        reads = Counted.by_socket[dripped_id]
        assert any(dripping for _, _, _, dripping in reads), reads
        assert any(held for _, held, _, _ in reads), reads
        # held reads: about one per DRIP_HOLD of the drip (3,000 writes: 1.5 s or more),
        # not one per segment
        assert len(reads) <= 3000 // 50, len(reads)
        ws = Counted.sockets[dripped_id]
        assert ws._drip_mark is None  # the frame is whole: the next one starts afresh
        assert buffer_is_fixed(ws)
        for key, others in Counted.by_socket.items():
            if key != dripped_id:
                assert not any(held or dripping for _, held, _, dripping in others)
                assert not buffer_is_fixed(Counted.sockets[key])
    finally:
        stop.set()
        done.set()
        await asyncio.to_thread(dripper.join, 5)
        await asyncio.to_thread(meanwhile.join, 5)
    assert len(other["round_trips"]) >= 10, other
    assert max(other["round_trips"]) < 2.0, other


async def test_the_kernel_counts_what_a_socket_received() -> None:
    """edge.trickle.received reads Linux's TCP_INFO at the offsets it assumes: the
    payload bytes, and one data segment per write that waits for the reader."""
    with socket.create_server(("127.0.0.1", 0)) as srv:
        client = socket.create_connection(srv.getsockname())
        conn, _ = srv.accept()
        with client, conn:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            start = trickle.received(conn)
            assert start == (0, 0)
            for _ in range(100):
                client.sendall(b"0123456789")
                await asyncio.sleep(0.001)
            client.sendall(b"x" * 5000)

            def arrived() -> None:
                now = trickle.received(conn)
                assert now is not None and now[0] == 6000, now

            await eventually(arrived)
            now = trickle.received(conn)
            assert now is not None
            assert 2 <= now[1] <= 101, now  # writes may merge, never split into more
            assert conn.recv(10000, socket.MSG_PEEK)  # the bytes are the socket's


def test_a_drip_is_many_tiny_segments() -> None:
    assert trickle.dripped((0, 0), (640, 64))  # 10 bytes each
    assert not trickle.dripped((0, 0), (640, 63))  # too few to tell
    assert not trickle.dripped((0, 0), (64 * trickle.DRIP_SEGMENT, 64))  # not tiny
    assert not trickle.dripped((100, 5), (100 + 8 + 20000, 20))  # a header, then MSS
    assert trickle.dripped((10, 2**32 - 10), (10 + 700, 60))  # the u32 wraps


def test_the_wake_threshold_is_what_the_frame_lacks_within_the_cap() -> None:
    assert trickle.wake_threshold(0) == trickle.EVERY_BYTE  # no frame in progress
    assert trickle.wake_threshold(1) == 1
    assert trickle.wake_threshold(500) == 500
    assert trickle.wake_threshold(10 * trickle.LOWAT_CAP) == trickle.LOWAT_CAP


async def test_a_slow_but_live_frame_is_seen_by_the_liveness_sweep(
        echo_edge: tuple[Edge, int]) -> None:
    """Bytes below the low-water mark are not read, so the sweep lowers it again: a link
    that trickles slower than the cap per sweep is seen alive, not dropped."""
    server, port = echo_edge
    sock = await asyncio.to_thread(handshake, port)
    payload = os.urandom(3000)
    frame = client_frame(wf.OP_BINARY, payload)
    sock.sendall(frame[:100])

    def marked() -> None:
        assert Counted.reads and Counted.reads[-1][2] > trickle.EVERY_BYTE

    def seen() -> None:
        assert ws.seen

    await eventually(marked)
    (ws,) = server.sockets
    ws.check_alive(time.monotonic(), 30.0)  # a sweep: seen since the last one
    assert not ws.seen
    sock.sendall(frame[100:200])  # below the mark: the kernel does not wake the edge
    ws.check_alive(time.monotonic(), 30.0)  # the next sweep lowers the mark...
    await eventually(seen)  # ...so those bytes are read
    assert sum(r[0] for r in Counted.reads) == 200
    assert await asyncio.to_thread(sock.recv, 2) == b"\x89\x00"  # the sweep's ping
    sock.sendall(frame[200:])
    assert await asyncio.to_thread(recv_frame, sock, len(payload)) == payload
    sock.close()
