"""The load generator's connect path (bench/peers.py): what a server sees of it and how
it counts, against a scripted fake PeerServer on this test's own event loop, on asyncio's
loop and on uvloop (the one ``python -m bench`` uses).

The fake server reads each upgrade request and answers by the id's first word: ``ok``
101 and OPEN in one write, ``split`` the 101 head in two writes and the OPEN in a third,
``err`` an ERROR frame, ``taken`` ID-TAKEN, ``http`` a 400, ``mute`` nothing at all.
"""

from __future__ import annotations

import asyncio
import gc
import json
import re
import socket
from collections.abc import Callable, Coroutine
from typing import Any, cast
from urllib.parse import quote

import pytest

from bench import wsproto as w
from bench.peers import (
    OPEN_FRAME,
    ServerRefused,
    Tally,
    Target,
    close_all,
    collector_paused,
    open_peer,
    open_peers,
)
from tests.waiting import until

HEAD_101 = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n")
REQUEST = re.compile(
    rb"GET /peerjs\?key=peerjs&id=(?P<id>[^&]+)&token=(?P<token>[^ ]+) HTTP/1\.1\r\n"
    rb"Host: 127\.0\.0\.1:\d+\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    rb"Sec-WebSocket-Key: [A-Za-z0-9+/]{22}==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def server_frame(obj: dict[str, Any]) -> bytes:
    payload = json.dumps(obj, separators=(",", ":")).encode()
    assert len(payload) < 126
    return bytes([0x81, len(payload)]) + payload


class FakeServer:
    """Answers upgrades by script; notes requests, how sockets ended, handshakes in
    flight (accepted, not yet answered). With ``hold`` it answers only once ``hold``
    handshakes wait (or every remaining one of ``expected``)."""

    def __init__(self, hold: int = 0, expected: int = 0):
        self.requests: list[bytes] = []
        self.ended: list[str] = []  # "eof" or "reset", one per socket
        self.waiting: list[Conn] = []
        self.most_waiting = 0
        self.accepted = 0
        self.hold = hold
        self.expected = expected
        self.server: asyncio.Server | None = None

    async def start(self) -> Target:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: Conn(self), "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return Target("fake", "127.0.0.1", port)

    def stop(self) -> None:
        assert self.server is not None
        self.server.close()

    def arrived(self, conn: Conn) -> None:
        self.accepted += 1
        self.waiting.append(conn)
        self.most_waiting = max(self.most_waiting, len(self.waiting))
        if len(self.waiting) >= self.hold or self.accepted >= self.expected:
            waiting, self.waiting = self.waiting, []
            for c in waiting:
                c.answer()


class Conn(asyncio.Protocol):
    def __init__(self, server: FakeServer):
        self.server = server
        self.buf = b""
        self.kind = ""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.kind:
            return  # frames from the client: not looked at
        self.buf += data
        if b"\r\n\r\n" not in self.buf:
            return
        self.server.requests.append(self.buf)
        match = REQUEST.fullmatch(self.buf)
        self.kind = match.group("id").split(b"-")[0].decode() if match else "bad"
        if self.kind != "mute":
            self.server.arrived(self)

    def answer(self) -> None:
        assert self.transport is not None
        t = self.transport
        if self.kind == "ok":
            t.write(HEAD_101 + OPEN_FRAME)
        elif self.kind == "split":
            loop = asyncio.get_running_loop()
            t.write(HEAD_101[:20])
            loop.call_later(0.01, t.write, HEAD_101[20:])
            loop.call_later(0.02, t.write, OPEN_FRAME)
        elif self.kind == "err":
            t.write(HEAD_101 + server_frame({"type": "ERROR", "payload": {"msg": "no"}}))
        elif self.kind == "taken":
            t.write(HEAD_101 + server_frame({"type": "ID-TAKEN",
                                             "payload": {"msg": "ID is taken"}}))
        else:
            t.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")

    def eof_received(self) -> None:
        self.server.ended.append("eof")

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            self.server.ended.append("reset")


Scenario = Callable[[], Coroutine[Any, Any, None]]


def run_on(loop_name: str, scenario: Scenario) -> None:
    if loop_name == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        uvloop.run(scenario())
    else:
        asyncio.run(scenario())


LOOPS = pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])


@LOOPS
def test_every_id_reaches_open_and_each_close_is_a_fin(loop_name: str) -> None:
    async def scenario() -> None:
        fake = FakeServer()
        target = await fake.start()
        ids = [f"ok-{n}" for n in range(30)] + [f"split-{n}" for n in range(10)]
        assert gc.isenabled()
        result = await open_peers(target, ids, Tally(), 7)
        assert gc.isenabled()  # held off only while the batch ran
        assert not result.failures
        assert sorted(p.peer_id for p in result.peers) == sorted(ids)
        assert all(p.is_open and not p.closed for p in result.peers)
        assert result.elapsed > 0 and result.rate > 0
        tokens = {REQUEST.fullmatch(r).group("token") for r in fake.requests}  # type: ignore[union-attr]
        assert tokens == {f"tok-{i}".encode() for i in ids}
        close_all(result.peers)
        await until(lambda: len(fake.ended) == len(ids))
        assert fake.ended == ["eof"] * len(ids)
        fake.stop()

    run_on(loop_name, scenario)


@LOOPS
def test_concurrency_is_the_number_of_handshakes_in_flight(loop_name: str) -> None:
    async def scenario() -> None:
        fake = FakeServer(hold=6, expected=40)  # answers in groups of 6 waiting
        target = await fake.start()
        result = await open_peers(target, [f"ok-{n}" for n in range(40)], Tally(), 6)
        assert len(result.peers) == 40
        assert fake.most_waiting == 6
        close_all(result.peers)
        fake.stop()

    run_on(loop_name, scenario)


@LOOPS
def test_failures_are_counted_by_kind_and_the_batch_goes_on(loop_name: str) -> None:
    async def scenario() -> None:
        fake = FakeServer()
        target = await fake.start()
        ids = ["ok-1", "err-1", "taken-1", "http-1", "mute-1", "mute-2", "ok-2", "split-1"]
        result = await open_peers(target, ids, Tally(), 2, timeout=0.5)
        assert sorted(p.peer_id for p in result.peers) == ["ok-1", "ok-2", "split-1"]
        labels = dict(result.failures)
        assert labels.pop("timeout") == 2
        assert labels.pop('ServerRefused: {"type":"ERROR","payload":{"msg":"no"}}') == 1
        assert labels.pop('ServerRefused: {"type":"ID-TAKEN","payload":{"msg":"ID is taken"}}') == 1
        assert labels == {"HandshakeError: HTTP/1.1 400 Bad Request": 1}
        # every failed socket was closed by the generator with a normal close
        await until(lambda: len(fake.ended) == 5)
        assert fake.ended == ["eof"] * 5
        close_all(result.peers)
        fake.stop()

    run_on(loop_name, scenario)


@LOOPS
def test_each_connection_has_its_own_timeout(loop_name: str) -> None:
    async def scenario() -> None:
        fake = FakeServer()
        target = await fake.start()
        # one at a time: the third starts after two time-outs, later than the timeout
        # after the batch began, and must still be given its own time
        result = await open_peers(target, ["mute-1", "mute-2", "ok-1"], Tally(), 1,
                                  timeout=0.3)
        assert [p.peer_id for p in result.peers] == ["ok-1"]
        assert dict(result.failures) == {"timeout": 2}
        assert result.elapsed >= 0.6
        close_all(result.peers)
        fake.stop()

    run_on(loop_name, scenario)


@LOOPS
def test_refused_connections_are_failures(loop_name: str) -> None:
    async def scenario() -> None:
        with socket.socket() as s:  # a port with nobody listening
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        result = await open_peers(Target("none", "127.0.0.1", port), ["a", "b", "c"],
                                  Tally(), 2)
        assert not result.peers
        assert sum(result.failures.values()) == 3
        assert all(label.startswith("ConnectionRefusedError") for label in result.failures)
        with pytest.raises(ConnectionRefusedError):
            await open_peer(Target("none", "127.0.0.1", port), "d", Tally(), 5.0)

    run_on(loop_name, scenario)


@LOOPS
def test_open_peer_raises_what_went_wrong(loop_name: str) -> None:
    async def scenario() -> None:
        fake = FakeServer()
        target = await fake.start()
        peer = await open_peer(target, "split-1", Tally(), 5.0, token="secret")
        assert peer.is_open
        assert b"&token=secret " in fake.requests[0]
        with pytest.raises(ServerRefused, match="ID-TAKEN"):
            await open_peer(target, "taken-1", Tally(), 5.0)
        with pytest.raises(TimeoutError):
            await open_peer(target, "mute-1", Tally(), 0.2)
        await until(lambda: len(fake.ended) == 2)  # the refused and the timed-out one
        assert fake.ended == ["eof", "eof"]
        peer.close()
        await until(lambda: len(fake.ended) == 3)
        assert fake.ended[2] == "eof"
        fake.stop()

    run_on(loop_name, scenario)


def test_request_quotes_as_urllib_does() -> None:
    for text in ["peerjs", "a-00001", "tok-A.b_c~d", "a b", "é", "x/y", "a&b=c", "", "%"]:
        path = w.peerjs_path("/m/", text, text, text)
        q = quote(text)
        assert path == f"/m/peerjs?key={q}&id={q}&token={q}"
    request = Target("t", "127.0.0.1", 9000).request("a-00001", "tok-a-00001")
    assert re.fullmatch(REQUEST.pattern.replace(rb"\d+", b"9000"), request)
    assert request != Target("t", "127.0.0.1", 9000).request("a-00001", "tok-a-00001")


def test_collector_paused_restores_the_state_it_found() -> None:
    assert gc.isenabled()
    try:
        with collector_paused():
            assert not gc.isenabled()
            with collector_paused():
                assert not gc.isenabled()
            assert not gc.isenabled()  # the inner block found it off
        assert gc.isenabled()
        gc.disable()
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_upgrade_requests_are_the_targets_requests() -> None:
    key_line = re.compile(rb"Sec-WebSocket-Key: [A-Za-z0-9+/]{22}==\r\n")
    for target in [Target("t", "127.0.0.1", 9000),
                   Target("t", "localhost", 1, mount="/my app/", key="k&y")]:
        requests = w.UpgradeRequests(target.host, target.port, target.mount, target.key)
        for peer_id, token in [("a-00001", "tok-a-00001"), ("é x", "t/%")]:
            ours, theirs = requests.request(peer_id, token), target.request(peer_id, token)
            assert key_line.search(ours) and key_line.search(theirs)
            assert key_line.sub(b"", ours) == key_line.sub(b"", theirs)
