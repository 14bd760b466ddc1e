"""The edge's pure parts: the route table, the client address, response framing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from edge import access
from edge.access import AccessLog
from edge.asgi_http import response_head, titled
from edge.clientaddr import client_address, counts_per_socket
from edge.http import Request, plain, websocket_key
from edge.routes import Routes
from peerhub.env import ImproperEnvironment
from peerhub.proxy import LOOPBACK, BadProxyHeader, parse_trusted
from peerhub.serve import daphne_argv, tls_context
from signalling.looptasks import Running, runs_on_a_running_loop


async def app_a(scope: dict[str, Any], receive: Any, send: Any) -> None:
    return None


async def app_b(scope: dict[str, Any], receive: Any, send: Any) -> None:
    return None


def test_routes_are_exact_and_the_admin_listener_sees_only_admin_entries() -> None:
    routes = Routes()
    routes.add("/healthz", app_a)
    routes.add("/private", app_b, admin=False)
    routes.add_resolver(lambda path: app_b if path.startswith("/peerjs/") else None)
    assert routes.find("/healthz", public=True) is app_a
    assert routes.find("/healthz", public=False) is app_a
    assert routes.find("/healthz/", public=True) is None
    assert routes.find("/private", public=False) is None
    assert routes.find("/peerjs/id", public=True) is app_b
    assert routes.find("/peerjs/id", public=False) is None  # resolvers: public only
    assert routes.find("/admin/", public=True) is None


def test_client_address_reads_proxy_headers_only_from_trusted_peers() -> None:
    headers = [(b"x-forwarded-for", b"198.51.100.1, 203.0.113.9"),
               (b"x-forwarded-proto", b"https")]
    loopback = parse_trusted(LOOPBACK)
    assert client_address(("127.0.0.1", 5000), headers, None) == (("127.0.0.1", 5000), None)
    assert client_address(("127.0.0.1", 5000), headers, loopback) == (
        ("203.0.113.9", 0), "https")  # the first untrusted hop from the right
    assert client_address(("192.0.2.7", 5000), headers, loopback) == (
        ("192.0.2.7", 5000), None)  # not a trusted peer: its headers are not read
    with pytest.raises(BadProxyHeader):
        client_address(("127.0.0.1", 5000), [(b"x-forwarded-for", b"nonsense")], loopback)
    assert not counts_per_socket("127.0.0.1", loopback)
    assert counts_per_socket("192.0.2.7", loopback) and counts_per_socket("127.0.0.1", None)


@pytest.mark.parametrize(("version", "keep", "length", "expect", "absent"), [
    ("1.1", True, 5, [b"Content-Length: 5"], [b"Connection:", b"Transfer-Encoding"]),
    ("1.1", False, None, [b"Transfer-Encoding: chunked", b"Connection: close"], []),
    ("1.0", True, 3, [b"Connection: keep-alive"], [b"Transfer-Encoding"]),
])
def test_response_head_framing(version: str, keep: bool, length: int | None,
                               expect: list[bytes], absent: list[bytes]) -> None:
    head = response_head(200, [(b"content-type", b"text/plain")], version=version,
                         keep_alive=keep, length=length)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"\r\n\r\n")
    for part in expect:
        assert part in head
    for part in absent:
        assert part not in head


def test_plain_responses_carry_their_length() -> None:
    out = plain(431, "Request Header Fields Too Large")
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 Request Header Fields Too Large")
    assert b"Content-Length: %d" % len(body) in head and b"Connection: close" in head


def upgrade(**headers: bytes) -> Request:
    req = Request()
    req.method = "GET"
    base = {b"upgrade": b"websocket", b"connection": b"keep-alive, Upgrade",
            b"sec-websocket-version": b"13", b"sec-websocket-key": b"dGhlIHNhbXBsZSBub25jZQ=="}
    base.update({k.replace("_", "-").encode(): v for k, v in headers.items()})
    req.headers = list(base.items())
    return req


def test_websocket_key_needs_a_valid_version_13_upgrade() -> None:
    assert websocket_key(upgrade()) == b"dGhlIHNhbXBsZSBub25jZQ=="
    assert websocket_key(upgrade(sec_websocket_version=b"8")) is None
    assert websocket_key(upgrade(sec_websocket_key=b"c2hvcnQ=")) is None
    assert websocket_key(upgrade(sec_websocket_key=b"not base64!")) is None
    assert websocket_key(upgrade(upgrade=b"h2c")) is None
    post = upgrade()
    post.method = "POST"
    assert websocket_key(post) is None


def test_daphne_gets_only_the_private_socket_and_trusts_the_edge_headers() -> None:
    argv = daphne_argv("unix:/tmp/x/http.sock:mode=600")
    assert argv[:2] == ["-e", "unix:/tmp/x/http.sock:mode=600"]
    assert "--proxy-headers" in argv and argv[-1] == "peerhub.asgi:application"


def test_tls_settings_must_come_in_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TLS_CERT_FILE", raising=False)
    monkeypatch.delenv("TLS_KEY_FILE", raising=False)
    assert tls_context() is None
    monkeypatch.setenv("TLS_CERT_FILE", "/nonexistent.pem")
    with pytest.raises(ImproperEnvironment, match="must be set together"):
        tls_context()
    monkeypatch.setenv("TLS_KEY_FILE", "/nonexistent-key.pem")
    with pytest.raises(ImproperEnvironment, match="cannot load"):
        tls_context()


def test_header_names_go_out_title_cased() -> None:
    assert titled(b"access-control-allow-origin") == b"Access-Control-Allow-Origin"
    assert titled(b"content-type") == b"Content-Type"
    assert titled(b"x-") == b"X-"
    head = response_head(200, [(titled(b"vary"), b"Origin")], version="1.1",
                         keep_alive=True, length=0)
    assert b"\r\nVary: Origin\r\n" in head


class CountingStream:
    """A text stream that remembers each write."""

    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)


async def test_access_lines_of_one_loop_turn_are_one_write() -> None:
    stream = CountingStream()
    log = AccessLog(stream)  # type: ignore[arg-type]
    log.websocket("WSCONNECT", "/peerjs", ("10.0.0.1", 5000))
    log.request(("10.0.0.2", 5001), "GET", "/peerjs/id", 200, 36)
    assert stream.writes == []  # not yet: at the loop's next turn
    await asyncio.sleep(0)
    assert len(stream.writes) == 1
    lines = stream.writes[0].splitlines()
    assert lines[0].startswith("10.0.0.1:5000 - - [") and lines[0].endswith(
        '"WSCONNECT /peerjs" - -')
    assert lines[1].endswith('"GET /peerjs/id" 200 36')
    log.websocket("WSDISCONNECT", "/peerjs", ("10.0.0.1", 5000))
    log.flush()  # what the edge's shutdown does
    assert len(stream.writes) == 2 and "WSDISCONNECT" in stream.writes[1]


def test_websocket_paths_are_redacted_in_the_access_log_whatever_the_memo_holds() -> None:
    stream = CountingStream()
    log = AccessLog(stream)  # type: ignore[arg-type]
    legacy = "/peerjs/peer1/secret-token/id"
    for n in range(access.MAX_PATHS + 3):  # past the memo's bound: it is emptied, not grown
        log.websocket("WSREJECT", f"/p{n}", ("10.0.0.1", 1))
        assert len(log._paths) <= access.MAX_PATHS
    for _ in range(2):  # redacted the first time and from the memo the second
        log.websocket("WSREJECT", legacy, ("10.0.0.1", 1))
    assert all("secret-token" not in w for w in stream.writes)
    assert stream.writes[-1].endswith('"WSREJECT /peerjs/peer1/***/id" - -\n')


def test_access_lines_without_a_loop_are_written_at_once() -> None:
    stream = CountingStream()
    AccessLog(stream).websocket("WSREJECT", "/peerjs", ("10.0.0.1", 1))  # type: ignore[arg-type]
    assert len(stream.writes) == 1 and "WSREJECT" in stream.writes[0]


async def test_a_background_task_counts_as_started_only_pending_on_a_running_loop() -> None:
    assert not runs_on_a_running_loop(None)
    pending = asyncio.get_running_loop().create_task(asyncio.sleep(60))
    try:
        assert runs_on_a_running_loop(pending)
    finally:
        pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    assert not runs_on_a_running_loop(pending)  # done


async def test_the_running_gate_holds_until_a_watched_task_ends_or_is_forgotten() -> None:
    loop = asyncio.get_running_loop()
    gate = Running()
    assert not gate.holds()
    gate.watch([])
    assert not gate.holds()  # nothing to watch
    first, second = loop.create_task(asyncio.sleep(60)), loop.create_task(asyncio.sleep(60))
    try:
        gate.watch([first, second])
        assert gate.holds()
        gate.forget()
        assert not gate.holds()
        gate.watch([first, second])
        second.cancel()
        await asyncio.gather(second, return_exceptions=True)
        assert not gate.holds()  # one of them ended
        gate.watch([first, second])
        assert not gate.holds()  # not all pending
        gate.watch([first, None])
        assert not gate.holds()
    finally:
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)


def test_the_running_gate_does_not_hold_once_its_loop_stopped() -> None:
    loop = asyncio.new_event_loop()
    gate = Running()
    try:
        async def arm() -> asyncio.Task[None]:
            task = loop.create_task(asyncio.sleep(60))
            gate.watch([task])
            assert gate.holds()
            return task

        left = loop.run_until_complete(arm())
        assert not left.done() and not gate.holds()  # pending, but its loop is not running
        left.cancel()
        loop.run_until_complete(asyncio.gather(left, return_exceptions=True))
    finally:
        loop.close()


def test_a_task_left_on_a_stopped_loop_is_started_again() -> None:
    loop = asyncio.new_event_loop()
    try:
        left = loop.create_task(asyncio.sleep(60))
        assert not left.done()
        assert not runs_on_a_running_loop(left)  # its loop is not running
        left.cancel()
        loop.run_until_complete(asyncio.gather(left, return_exceptions=True))
    finally:
        loop.close()


def test_the_headers_are_noted_once_with_repeated_websocket_keys_counted() -> None:
    req = upgrade()
    req.headers.append((b"sec-websocket-key", b"AAAAAAAAAAAAAAAAAAAAAA=="))
    req.headers.append((b"upgrade", b"h2c"))
    assert req.noted[b"sec-websocket-key"] == b"dGhlIHNhbXBsZSBub25jZQ=="  # the first
    assert req.noted[b"upgrade"] == b"websocket"
    assert req.ws_keys == 2
    one = upgrade()
    assert one.noted[b"upgrade"] == b"websocket" and one.ws_keys == 1
    other = upgrade()  # another header repeated, one key
    other.headers.append((b"upgrade", b"h2c"))
    assert other.noted[b"upgrade"] == b"websocket" and other.ws_keys == 1
    none = upgrade()
    none.headers = [h for h in none.headers if h[0] != b"sec-websocket-key"]
    assert none.noted.get(b"sec-websocket-key") is None and none.ws_keys == 0


def test_the_address_guard_counts_sockets_and_gives_places_back() -> None:
    from signalling.guards import IpGuard
    from signalling.protocol import Errors

    guard = IpGuard(max_sockets=2, rate=1000, burst=1000)
    assert guard.admit("10.0.0.1", 0.0) is None and guard.admit("10.0.0.1", 0.0) is None
    assert guard.admit("10.0.0.1", 0.0) == Errors.IP_SOCKETS  # refused: not counted
    assert guard.open_sockets("10.0.0.1") == 2 and guard.admit("10.0.0.2", 0.0) is None
    guard.release("10.0.0.1")
    assert guard.admit("10.0.0.1", 0.0) is None
    for _ in range(3):  # one release too many leaves nothing behind
        guard.release("10.0.0.1")
    assert guard.open_sockets("10.0.0.1") == 0 and guard.total_open() == 1
    slow = IpGuard(max_sockets=100, rate=1, burst=2)
    assert [slow.admit("10.0.0.3", 0.0) for _ in range(3)] == [None, None, Errors.IP_RATE]
