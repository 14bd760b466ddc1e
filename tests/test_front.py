"""The edge (edge/) on a real server: raw RFC 6455 bytes, HTTP next to the websocket.

Wire-level cases use plain asyncio sockets and a tiny masked-frame builder of their own;
ordinary peers use the ``websockets`` library (which answers pings by itself).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from signalling.protocol import ID_PATTERN, Errors
from tests.rawframes import client_frame
from tests.servers import LiveServer, run_server
from tests.wsclient import closed_with, join, open_socket, recv, rejoin, send

StartServer = Callable[..., AbstractContextManager[LiveServer]]

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MAX_MESSAGE_SIZE = 1024  # the edge's own limit is four times this
HARD_LIMIT = 4 * MAX_MESSAGE_SIZE
IO_TIMEOUT = 10.0  # generous: the machine is slow and shared


def uid(prefix: str = "f") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def edge_server(tmp_path_factory: pytest.TempPathFactory,
                 template_db: Path) -> Iterator[LiveServer]:
    """A server with a small message limit."""
    with run_server(tmp_path_factory.mktemp("edge"), template_db,
                    MAX_MESSAGE_SIZE=str(MAX_MESSAGE_SIZE)) as server:
        yield server


@pytest.fixture(scope="module")
def quick_server(tmp_path_factory: pytest.TempPathFactory,
                 template_db: Path) -> Iterator[LiveServer]:
    """A server with short liveness and handshake limits (pings every second)."""
    with run_server(tmp_path_factory.mktemp("quick"), template_db,
                    ALIVE_TIMEOUT="2000", HANDSHAKE_TIMEOUT="2") as server:
        yield server


# --- a raw client -------------------------------------------------------------------


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return code.to_bytes(2, "big") + reason


def upgrade_request(target: str, key: bytes, host: str = "localhost",
                    extra: str = "") -> bytes:
    return (f"GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
            f"Sec-WebSocket-Version: 13\r\n{extra}\r\n").encode()


def ws_target(server: LiveServer, peer_id: str, token: str = "tok") -> str:
    return f"{server.path}peerjs?key=peerjs&id={peer_id}&token={token}"


class Raw:
    """A plain TCP connection speaking bytes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, server: LiveServer) -> Raw:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_head(self) -> tuple[int, dict[bytes, bytes], bytes]:
        """An HTTP response head: status, headers (lower-cased names) and the raw head."""
        raw = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), IO_TIMEOUT)
        lines = raw[:-4].split(b"\r\n")
        assert lines[0].startswith(b"HTTP/1.1 "), raw
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        return int(lines[0].split(b" ")[1]), headers, raw

    async def read_response(self) -> tuple[int, dict[bytes, bytes], bytes]:
        """A whole HTTP response (body by Content-Length, else up to the close)."""
        status, headers, _ = await self.read_head()
        if b"content-length" in headers:
            body = await asyncio.wait_for(
                self.reader.readexactly(int(headers[b"content-length"])), IO_TIMEOUT)
        else:
            body = await asyncio.wait_for(self.reader.read(), IO_TIMEOUT)
        return status, headers, body

    async def read_frame(self) -> tuple[bool, int, bytes]:
        """One server frame: (fin, opcode, payload); server frames are never masked."""
        async with asyncio.timeout(IO_TIMEOUT):
            b0, b1 = await self.reader.readexactly(2)
            assert not b1 & 0x80, "a server frame was masked"
            n = b1 & 0x7F
            if n == 126:
                n = int.from_bytes(await self.reader.readexactly(2), "big")
            elif n == 127:
                n = int.from_bytes(await self.reader.readexactly(8), "big")
            payload = await self.reader.readexactly(n)
        return bool(b0 & 0x80), b0 & 0x0F, payload

    async def frames_until_closed(self, timeout: float = IO_TIMEOUT
                                  ) -> list[tuple[int, bytes]]:
        """Read frames until the server closes TCP; fail if it has not within ``timeout``."""
        frames: list[tuple[int, bytes]] = []
        try:
            async with asyncio.timeout(timeout):
                while True:
                    _, opcode, payload = await self.read_frame()
                    frames.append((opcode, payload))
        except (asyncio.IncompleteReadError, ConnectionResetError):
            return frames
        except TimeoutError:
            pytest.fail(f"the server did not close the connection; frames: {frames}")

    async def closed_within(self, timeout: float) -> bytes:
        """All bytes until the server closes TCP; fail if it has not within ``timeout``."""
        data = b""
        try:
            async with asyncio.timeout(timeout):
                while chunk := await self.reader.read(65536):
                    data += chunk
        except ConnectionResetError:
            pass
        except TimeoutError:
            pytest.fail(f"the server did not close the connection; received {data!r}")
        return data

    def close(self) -> None:
        self.writer.close()


async def raw_join(server: LiveServer, peer_id: str, token: str = "tok"
                   ) -> tuple[Raw, dict[bytes, bytes]]:
    """A raw websocket for ``peer_id``: handshake done, OPEN received."""
    raw = await Raw.connect(server)
    key = base64.b64encode(os.urandom(16))
    await raw.send(upgrade_request(ws_target(server, peer_id, token), key))
    status, headers, head = await raw.read_head()
    assert status == 101, head
    assert headers[b"sec-websocket-accept"] == base64.b64encode(
        hashlib.sha1(key + GUID).digest())
    fin, opcode, payload = await raw.read_frame()
    assert (fin, opcode, json.loads(payload)) == (True, OP_TEXT, {"type": "OPEN"})
    return raw, headers


def served_by_edge(headers: dict[bytes, bytes]) -> bool:
    """The edge's 101 has no Server header (daphne's, autobahn's, said ``Server: daphne``)."""
    return b"server" not in headers


async def pair(server: LiveServer) -> tuple[ClientConnection, ClientConnection, str, str]:
    a_id, b_id = uid("a"), uid("b")
    return await join(server, a_id), await join(server, b_id), a_id, b_id


async def relays(a: ClientConnection, b: ClientConnection, a_id: str, b_id: str) -> None:
    """``a`` → ``b`` and back, with the PeerJS src stamped."""
    tag = uuid.uuid4().hex
    await send(a, type="OFFER", dst=b_id, payload={"sdp": tag})
    assert await recv(b, IO_TIMEOUT) == {"type": "OFFER", "src": a_id, "dst": b_id,
                                         "payload": {"sdp": tag}}
    await send(b, type="ANSWER", dst=a_id, payload={"sdp": tag})
    assert await recv(a, IO_TIMEOUT) == {"type": "ANSWER", "src": b_id, "dst": a_id,
                                         "payload": {"sdp": tag}}


async def id_is_free_again(server: LiveServer, peer_id: str) -> None:
    """A new socket for ``peer_id`` with another token gets OPEN (the old one is gone).

    The old socket's disconnect reaches the consumer asynchronously, so a first attempt
    racing it may still see ID-TAKEN.
    """
    await (await rejoin(server, peer_id, token=uid("other"))).close()


# --- the handshake and frames --------------------------------------------------------


def test_the_server_runs_on_uvloop(edge_server: LiveServer) -> None:
    # django.setup() imports daphne.server, which makes its loop at import: uvloop's
    # policy must be installed before that, or the edge silently runs on asyncio's loop.
    assert "peerhub: event loop uvloop.Loop" in edge_server.log()


def test_uvloop_false_runs_on_asyncio(tmp_path: Path, template_db: Path) -> None:
    with run_server(tmp_path, template_db, UVLOOP="false") as server:
        log = server.log()
    assert "peerhub: event loop asyncio" in log
    assert "uvloop" not in log.split("peerhub: event loop", 1)[1].splitlines()[0]


async def test_handshake_is_101_with_the_accept_value_and_then_open(
        edge_server: LiveServer) -> None:
    raw, headers = await raw_join(edge_server, uid())
    assert headers[b"upgrade"].lower() == b"websocket"
    assert headers[b"connection"].lower() == b"upgrade"
    assert served_by_edge(headers), headers
    await raw.send(client_frame(OP_CLOSE, close_payload(1000)))
    assert (await raw.frames_until_closed())[0] == (OP_CLOSE, close_payload(1000))
    raw.close()


async def test_handshake_arriving_byte_by_byte_is_served_by_the_edge(
        edge_server: LiveServer) -> None:
    raw = await Raw.connect(edge_server)
    key = base64.b64encode(os.urandom(16))
    request = upgrade_request(ws_target(edge_server, uid()), key)
    for i in range(0, len(request), 7):
        await raw.send(request[i:i + 7])
        await asyncio.sleep(0.005)
    status, headers, _ = await raw.read_head()
    assert status == 101 and served_by_edge(headers)
    assert headers[b"sec-websocket-accept"] == base64.b64encode(
        hashlib.sha1(key + GUID).digest())
    assert json.loads((await raw.read_frame())[2]) == {"type": "OPEN"}
    raw.close()


async def test_fragmented_offer_with_a_ping_between_fragments(
        edge_server: LiveServer) -> None:
    a_id, b_id = uid("a"), uid("b")
    raw, _ = await raw_join(edge_server, a_id)
    b = await join(edge_server, b_id)
    payload = {"sdp": "v=0 héllo wörld " + "x" * 300}
    message = json.dumps({"type": "OFFER", "dst": b_id, "payload": payload},
                         ensure_ascii=False).encode()
    cut1 = message.index("é".encode()) + 1  # split inside a UTF-8 character
    cut2 = len(message) - 20
    await raw.send(client_frame(OP_TEXT, message[:cut1], fin=False))
    await raw.send(client_frame(OP_PING, b"ping-42"))
    assert await raw.read_frame() == (True, OP_PONG, b"ping-42")
    await raw.send(client_frame(OP_CONT, message[cut1:cut2], fin=False))
    await raw.send(client_frame(OP_CONT, message[cut2:]))
    assert await recv(b, IO_TIMEOUT) == {"type": "OFFER", "src": a_id, "dst": b_id,
                                         "payload": payload}
    # and the other way round, to the raw socket, as one text frame
    await send(b, type="ANSWER", dst=a_id, payload="back")
    fin, opcode, data = await raw.read_frame()
    assert (fin, opcode) == (True, OP_TEXT)
    assert json.loads(data) == {"type": "ANSWER", "src": b_id, "dst": a_id, "payload": "back"}
    raw.close()
    await b.close()


async def test_ping_is_answered_with_the_same_payload(edge_server: LiveServer) -> None:
    raw, _ = await raw_join(edge_server, uid())
    for payload in (b"", b"x", os.urandom(125)):
        await raw.send(client_frame(OP_PING, payload))
        assert await raw.read_frame() == (True, OP_PONG, payload)
    raw.close()


async def test_bursts_in_one_write_arrive_whole_and_in_order(
        edge_server: LiveServer) -> None:
    a_id, b_id = uid("a"), uid("b")
    raw, _ = await raw_join(edge_server, a_id)
    b = await join(edge_server, b_id)
    burst = b"".join(client_frame(OP_TEXT, json.dumps(
        {"type": "CANDIDATE", "dst": b_id, "payload": n}).encode()) for n in range(100))
    await raw.send(burst)
    assert [(await recv(b, IO_TIMEOUT))["payload"] for _ in range(100)] == list(range(100))
    for n in range(100):
        await send(b, type="CANDIDATE", dst=a_id, payload=n)
    received = []
    for _ in range(100):
        fin, opcode, data = await raw.read_frame()
        assert (fin, opcode) == (True, OP_TEXT)
        received.append(json.loads(data)["payload"])
    assert received == list(range(100))
    raw.close()
    await b.close()


async def test_binary_frame_is_relayed(edge_server: LiveServer) -> None:
    a_id, b_id = uid("a"), uid("b")
    raw, _ = await raw_join(edge_server, a_id)
    b = await join(edge_server, b_id)
    message = json.dumps({"type": "OFFER", "dst": b_id, "payload": "bin"}).encode()
    await raw.send(client_frame(OP_BINARY, message))
    assert await recv(b, IO_TIMEOUT) == {"type": "OFFER", "src": a_id, "dst": b_id,
                                         "payload": "bin"}
    raw.close()
    await b.close()


async def test_server_close_completes_when_the_client_answers(
        edge_server: LiveServer) -> None:
    peer_id = uid("taken")
    owner = await join(edge_server, peer_id, token="owner")
    raw = await Raw.connect(edge_server)
    await raw.send(upgrade_request(ws_target(edge_server, peer_id, "intruder"),
                                   base64.b64encode(os.urandom(16))))
    assert (await raw.read_head())[0] == 101
    _, opcode, data = await raw.read_frame()
    assert (opcode, json.loads(data)["type"]) == (OP_TEXT, "ID-TAKEN")
    _, opcode, data = await raw.read_frame()
    assert opcode == OP_CLOSE and int.from_bytes(data[:2], "big") == 1008
    started = time.monotonic()
    await raw.send(client_frame(OP_CLOSE, data[:2]))
    assert await raw.frames_until_closed() == []  # no second close frame, then TCP closed
    assert time.monotonic() - started < 4  # not the 5 s close timeout
    raw.close()
    await owner.close()


VIOLATIONS = {
    "invalid UTF-8 text": (client_frame(OP_TEXT, b'{"type":"OFFER","x":"\xff\xfe"}'), 1007),
    "invalid UTF-8 across fragments": (client_frame(OP_TEXT, b"ab\xc3", fin=False)
                                       + client_frame(OP_CONT, b"(cd"), 1007),
    "unmasked frame": (client_frame(OP_TEXT, b'{"type":"HEARTBEAT"}', masked=False), 1002),
    "reserved data opcode": (client_frame(0x3, b"x"), 1002),
    "reserved control opcode": (client_frame(0xB, b""), 1002),
    "rsv bit": (client_frame(OP_TEXT, b'{"type":"HEARTBEAT"}', rsv=4), 1002),
    "continuation without a start": (client_frame(OP_CONT, b"x"), 1002),
    "fragmented ping": (client_frame(OP_PING, b"x", fin=False), 1002),
    "bad close code": (client_frame(OP_CLOSE, close_payload(1005)), 1002),
    "one-byte close": (client_frame(OP_CLOSE, b"\x03"), 1002),
}


@pytest.mark.parametrize(("frame", "code"), list(VIOLATIONS.values()), ids=list(VIOLATIONS))
async def test_protocol_violation_is_closed_with_its_code_and_others_carry_on(
        edge_server: LiveServer, frame: bytes, code: int) -> None:
    a, b, a_id, b_id = await pair(edge_server)
    bad_id = uid("bad")
    raw, _ = await raw_join(edge_server, bad_id)
    await raw.send(frame)
    frames = await raw.frames_until_closed()
    assert frames, "no close frame before the TCP close"
    opcode, payload = frames[-1]
    assert opcode == OP_CLOSE and int.from_bytes(payload[:2], "big") == code, frames
    raw.close()
    await relays(a, b, a_id, b_id)
    await id_is_free_again(edge_server, bad_id)
    await a.close()
    await b.close()


async def test_header_announcing_more_than_the_hard_limit_is_closed_1009_unread(
        edge_server: LiveServer) -> None:
    a, b, a_id, b_id = await pair(edge_server)
    for length in (HARD_LIMIT + 1, 2 ** 40):
        raw, _ = await raw_join(edge_server, uid("big"))
        # the header and masking key only: the payload is never sent
        await raw.send(client_frame(OP_TEXT, b"", length=length))
        frames = await raw.frames_until_closed()
        assert frames and frames[-1][0] == OP_CLOSE, frames
        assert int.from_bytes(frames[-1][1][:2], "big") == 1009
        raw.close()
    await relays(a, b, a_id, b_id)
    await a.close()
    await b.close()


async def test_message_over_max_message_size_gets_error_then_1009(
        edge_server: LiveServer) -> None:
    big = await join(edge_server, uid("big"))
    await big.send("x" * (MAX_MESSAGE_SIZE + 1))  # under the edge's hard limit
    assert await recv(big, IO_TIMEOUT) == {"type": "ERROR",
                                           "payload": {"msg": Errors.TOO_BIG}}
    assert await closed_with(big, IO_TIMEOUT) == 1009


async def test_fragmented_message_over_the_hard_limit_is_closed_1009(
        edge_server: LiveServer) -> None:
    raw, _ = await raw_join(edge_server, uid("frag"))
    await raw.send(client_frame(OP_TEXT, b"x" * (HARD_LIMIT - 10), fin=False))
    await raw.send(client_frame(OP_CONT, b"", fin=True, length=11))
    frames = await raw.frames_until_closed()
    assert frames and frames[-1][0] == OP_CLOSE, frames
    assert int.from_bytes(frames[-1][1][:2], "big") == 1009
    raw.close()


@pytest.mark.parametrize(("payload", "echo"), [
    (close_payload(1000, b"bye"), 1000),
    (close_payload(4000), 4000),
    (b"", 1000),  # no status: the server answers 1000
], ids=["1000", "4000", "no-status"])
async def test_client_close_is_echoed_then_tcp_closed_and_the_id_freed(
        edge_server: LiveServer, payload: bytes, echo: int) -> None:
    peer_id = uid("c")
    raw, _ = await raw_join(edge_server, peer_id, token="first")
    await raw.send(client_frame(OP_CLOSE, payload))
    frames = await raw.frames_until_closed()
    assert len(frames) == 1 and frames[0][0] == OP_CLOSE, frames
    assert int.from_bytes(frames[0][1][:2], "big") == echo
    raw.close()
    await id_is_free_again(edge_server, peer_id)


async def test_wrong_path_upgrade_gets_the_same_refusal_as_before(
        edge_server: LiveServer) -> None:
    for path in ("/", "/foo", "/peerjs/", "/peerjsx", "/peerjs/id"):
        raw = await Raw.connect(edge_server)
        target = f"{path}?key=peerjs&id=Q&token=t"
        await raw.send(upgrade_request(target, base64.b64encode(os.urandom(16))))
        status, _, _ = await raw.read_response()
        assert status == 403, path
        raw.close()
    url = f"ws://{edge_server.host}:{edge_server.port}/foo?key=peerjs&id=Q&token=t"
    with pytest.raises(InvalidStatus) as err:
        await connect(url, open_timeout=IO_TIMEOUT)
    assert err.value.response.status_code == 403


# --- HTTP on the same port -------------------------------------------------------


def http_get(path: str, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n".encode()


async def test_id_route_with_connection_close_is_answered_then_closed(edge_server: LiveServer) -> None:
    raw = await Raw.connect(edge_server)
    await raw.send(http_get(f"{edge_server.path}peerjs/id?ts=1", "Connection: close\r\n"))
    status, headers, body = await raw.read_response()
    assert status == 200 and headers[b"connection"] == b"close"
    assert ID_PATTERN.match(body.decode()), body
    await raw.closed_within(IO_TIMEOUT)
    raw.close()


@pytest.mark.parametrize("chunks", [
    [b"GE", b"T /pe", b"erjs", b"/id HTTP/1.1\r\nHo", b"st: x\r\n", b"\r\n"],
    [b"GET /peerjs/id HTTP/1.1\r\n", b"Host: x\r\n", b"\r\n"],
    [b"G", b"E", b"T", b" ", b"/", b"peerjs", b"/", b"id", b" HTTP/1.1\r\nHost: x\r\n\r\n"],
], ids=["mid-prefix", "line-by-line", "tiny"])
async def test_http_head_in_small_writes_with_pauses(edge_server: LiveServer,
                                                     chunks: list[bytes]) -> None:
    raw = await Raw.connect(edge_server)
    for chunk in chunks:
        await raw.send(chunk)
        await asyncio.sleep(0.15)
    status, _, body = await raw.read_response()
    assert status == 200 and ID_PATTERN.match(body.decode()), body
    raw.close()


async def test_keep_alive_two_requests_on_one_connection(edge_server: LiveServer) -> None:
    raw = await Raw.connect(edge_server)
    ids = []
    for _ in range(2):
        await raw.send(http_get("/peerjs/id"))
        status, _, body = await raw.read_response()
        assert status == 200 and ID_PATTERN.match(body.decode()), body
        ids.append(body)
    # and pipelined, both in one write (the first replayed bytes hold both)
    await raw.send(http_get("/peerjs/id") + http_get("/"))
    status, _, body = await raw.read_response()
    assert status == 200 and ID_PATTERN.match(body.decode()), body
    ids.append(body)
    status, _, body = await raw.read_response()
    assert status == 200 and json.loads(body)["name"] == "PeerJS Server"
    assert len(set(ids)) == 3
    raw.close()


async def test_first_request_pipelined_with_a_second_is_answered_twice(
        edge_server: LiveServer) -> None:
    raw = await Raw.connect(edge_server)
    await raw.send(http_get("/peerjs/id") + http_get("/peerjs/id", "Connection: close\r\n"))
    for _ in range(2):
        status, _, body = await raw.read_response()
        assert status == 200 and ID_PATTERN.match(body.decode()), body
    raw.close()


BAD_UPGRADES = {
    "no upgrade headers": http_get("/peerjs?key=peerjs&id=Q&token=t"),
    "no upgrade headers, no query": http_get("/peerjs"),
    "no key": (b"GET /peerjs?key=peerjs&id=Q&token=t HTTP/1.1\r\nHost: x\r\n"
               b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Version: 13\r\n\r\n"),
    "short key": upgrade_request("/peerjs?key=peerjs&id=Q&token=t",
                                 base64.b64encode(b"short")),
    "POST": (b"POST /peerjs?key=peerjs&id=Q&token=t HTTP/1.1\r\nHost: x\r\n"
             b"Content-Length: 0\r\n\r\n"),
    "malformed header": b"GET /peerjs?key=peerjs HTTP/1.1\r\nHost x\r\nUpgrade websocket\r\n\r\n",
    "HTTP/1.0": b"GET /peerjs HTTP/1.0\r\n\r\n",
}


@pytest.mark.parametrize("request_bytes", list(BAD_UPGRADES.values()), ids=list(BAD_UPGRADES))
async def test_requests_to_the_ws_path_that_are_not_upgrades_get_http_answers(
        edge_server: LiveServer, request_bytes: bytes) -> None:
    raw = await Raw.connect(edge_server)
    await raw.send(request_bytes)
    data = await asyncio.wait_for(raw.reader.read(65536), IO_TIMEOUT)
    assert data.startswith(b"HTTP/1."), data  # an HTTP answer (400, 404, 403...)
    assert not data.startswith(b"HTTP/1.1 101"), data
    raw.close()


# --- liveness and stalled heads (ALIVE_TIMEOUT=2000, HANDSHAKE_TIMEOUT=2) -----------


async def test_silent_socket_is_pinged_then_dropped_while_a_live_client_stays(
        quick_server: LiveServer) -> None:
    a, b, a_id, b_id = await pair(quick_server)  # websockets answers pings itself
    silent_id = uid("silent")
    silent, _ = await raw_join(quick_server, silent_id)
    started = time.monotonic()
    frames = await silent.frames_until_closed(timeout=10)
    elapsed = time.monotonic() - started
    silent.close()
    assert (OP_PING, b"") in frames, frames
    assert elapsed >= 1.0, elapsed  # the unanswered ping had a whole interval (1 s)
    await asyncio.sleep(2.5)  # more than a whole ping cycle for the live clients
    await relays(a, b, a_id, b_id)
    await id_is_free_again(quick_server, silent_id)
    await a.close()
    await b.close()


async def test_raw_socket_that_answers_pings_stays(quick_server: LiveServer) -> None:
    raw, _ = await raw_join(quick_server, uid("pong"))
    deadline = time.monotonic() + 5
    pings = 0
    while time.monotonic() < deadline:
        _, opcode, payload = await raw.read_frame()
        assert opcode == OP_PING
        pings += 1
        await raw.send(client_frame(OP_PONG, payload))
    assert pings >= 2
    await raw.send(client_frame(OP_PING, b"still here"))
    while (frame := await raw.read_frame())[1] == OP_PING:
        pass
    assert frame == (True, OP_PONG, b"still here")
    raw.close()


@pytest.mark.parametrize("partial", [
    b"",
    b"GET /pe",
    b"GET /peerjs?key=peerjs&id=stall&token=t HTTP/1.1\r\nHost: x\r\n",
    b"GET /peerjs?key=peerjs&id=stall&token=t HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n",
], ids=["nothing", "part-of-the-prefix", "request-line", "most-headers"])
async def test_stalled_request_head_is_closed_after_the_handshake_timeout(
        quick_server: LiveServer, partial: bytes) -> None:
    raw = await Raw.connect(quick_server)
    started = time.monotonic()
    await raw.send(partial)
    data = await raw.closed_within(10)
    elapsed = time.monotonic() - started
    if partial:
        assert data.startswith(b"HTTP/1.1 408 "), data  # a started head: 408, closed
    else:
        assert data == b"", data  # nothing sent: just closed
    assert elapsed >= 1.5, elapsed  # HANDSHAKE_TIMEOUT=2 (counted from the accept)
    raw.close()


# --- other configurations -----------------------------------------------------------


async def test_edge_serves_the_mounted_path_only(start_server: StartServer) -> None:
    with start_server(PEERHUB_PATH="/app") as server:
        assert server.path == "/app/"
        a, b, a_id, b_id = await pair(server)
        await relays(a, b, a_id, b_id)
        raw, headers = await raw_join(server, uid())
        assert served_by_edge(headers)
        raw.close()
        for path in ("/peerjs", "/app/peerjs/", "/apppeerjs"):
            raw = await Raw.connect(server)
            await raw.send(upgrade_request(f"{path}?key=peerjs&id=Q&token=t",
                                           base64.b64encode(os.urandom(16))))
            assert (await raw.read_response())[0] == 403, path
            raw.close()
        raw = await Raw.connect(server)
        await raw.send(http_get("/app/peerjs/id"))
        status, _, body = await raw.read_response()
        assert status == 200 and ID_PATTERN.match(body.decode())
        raw.close()
        await a.close()
        await b.close()


async def test_proxy_headers_give_the_edge_the_forwarded_client_address(
        start_server: StartServer) -> None:
    """With PROXY_HEADERS the per-address limit counts X-Forwarded-For, not the proxy."""
    with start_server(PROXY_HEADERS="true", MAX_SOCKETS_PER_IP="1") as server:
        first = await open_socket(server, uid(),
                                  additional_headers={"X-Forwarded-For": "203.0.113.7"})
        assert await recv(first) == {"type": "OPEN"}
        other = await open_socket(server, uid(),
                                  additional_headers={"X-Forwarded-For": "203.0.113.8"})
        assert await recv(other) == {"type": "OPEN"}
        again = await open_socket(server, uid(),
                                  additional_headers={"X-Forwarded-For": "203.0.113.7"})
        assert await recv(again) == {"type": "ERROR",
                                     "payload": {"msg": Errors.IP_SOCKETS}}
        assert await closed_with(again) == 1008
        for ws in (first, other, again):
            await ws.close()


async def test_a_ping_flood_from_a_peer_that_never_reads_is_dropped(
        start_server: StartServer) -> None:
    """Pongs count against SEND_BUFFER_LIMIT like any frame; bystanders are unaffected."""
    with start_server(SEND_BUFFER_LIMIT="16384") as server:
        a, b, a_id, b_id = await pair(server)
        raw, _ = await raw_join(server, uid("flood"))
        raw.writer.transport.pause_reading()  # type: ignore[attr-defined]
        pings = client_frame(OP_PING, b"p" * 125) * 1000  # about 131 KB per write
        with pytest.raises(OSError):  # reset or broken pipe once the server dropped it
            for _ in range(400):  # up to 52 MB of pings, far beyond the socket buffers
                await raw.send(pings)
        await relays(a, b, a_id, b_id)
        raw.close()
        await a.close()
        await b.close()
