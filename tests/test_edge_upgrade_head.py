"""The upgrade head read without the parser's callbacks (edge.http.upgrade_head) reads
exactly what the callbacks read, or declines: compared on a corpus of heads."""

from __future__ import annotations

import itertools

import httptools
import pytest

from edge.http import HttpConnection, Request, upgrade_head

KEY = b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
UPGRADE = b"Upgrade: websocket\r\nConnection: Upgrade\r\n"


class Callbacks:
    """What HttpConnection's callbacks collect: the target, lower-cased headers and the
    head size as they count it."""

    def __init__(self) -> None:
        self.target = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.counted = 1

    def on_url(self, url: bytes) -> None:
        self.counted += len(url) + 16
        self.target += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.counted += len(name) + len(value) + 4
        self.headers.append((name.lower(), value))


def read_with_callbacks(data: bytes) -> tuple[Callbacks, int | None]:
    """The callbacks' reading and where the upgrade begins (None: no upgrade)."""
    seen = Callbacks()
    try:
        httptools.HttpRequestParser(seen).feed_data(data)
    except httptools.HttpParserUpgrade as upgrade:
        return seen, upgrade.args[0]
    except httptools.HttpParserError:
        return seen, None
    return seen, None


LINES = [b"GET /peerjs?key=k&id=a&token=t HTTP/1.1", b"GET /a%20b?x HTTP/1.0",
         b"GET  /two-spaces HTTP/1.1", b"GET /x HTTP/2.0", b"POST /x HTTP/1.1",
         b"GET /frag#f HTTP/1.1", b"GET /x\x80 HTTP/1.1", b"get /x HTTP/1.1"]
HEADERS = [b"Host: h\r\n", b"Host:h\r\n", b"Host:   h  \r\n", b"A:\tb c\t \r\n", b"E:\r\n",
           b"F:  \r\n", b"X-Odd_Name: v:w\r\n", b"Bad Name: v\r\n", b"N: a\x7fb\r\n",
           b"N: a\xffb\r\n", b" folded\r\n", b"Content-Length: 3\r\n",
           b"Transfer-Encoding: chunked\r\n", b"Expect: 100-continue\r\n", KEY, KEY,
           b"sec-websocket-version: 13\r\n"]
AFTER = [b"", b"\x81\x80abcd", b"abc", b"GET / HTTP/1.1\r\n\r\n"]


def heads() -> list[bytes]:
    found = []
    for line, after in itertools.product(LINES, AFTER):
        for pair in itertools.combinations(HEADERS, 2):
            found.append(line + b"\r\n" + b"".join(pair) + UPGRADE + b"\r\n" + after)
        found.append(line + b"\r\n" + UPGRADE + b"\r\n" + after)
        found.append(line + b"\r\n" + b"Host: h\r\n" + b"\r\n" + after)  # no upgrade
        found.append(line + b"\r\n" + UPGRADE)  # not whole
    found.append(b"\r\nGET / HTTP/1.1\r\n" + UPGRADE + b"\r\n")
    found.append(b"GET / HTTP/1.1\n" + UPGRADE + b"\r\n")
    return found


def test_an_upgrade_head_is_read_as_the_callbacks_read_it_or_declined() -> None:
    taken = 0
    for data in heads():
        seen, at = read_with_callbacks(data)
        head = upgrade_head(data, 16384)
        if head is None:
            continue
        taken += 1
        _, target, headers, end = head
        assert at == end, data
        assert (target, headers) == (seen.target, seen.headers), data
    assert taken > 1000  # the corpus does reach the fast reading


@pytest.mark.parametrize("size", range(200, 280))
def test_a_head_taken_near_the_limit_is_within_it_by_the_callbacks_count(size: int) -> None:
    data = (b"GET /p HTTP/1.1\r\nHost: h\r\nX: " + b"v" * 150 + b"\r\n" + UPGRADE + KEY
            + b"\r\n")
    seen, _ = read_with_callbacks(data)
    head = upgrade_head(data, size)
    if head is not None:
        assert seen.counted <= size
    lines = data.count(b"\r\n") - 1  # the request line and the headers
    assert (head is None) == (size < len(data) + lines)  # declined only near the limit


def test_the_websocket_scope_keeps_the_listed_headers_and_every_offered_subprotocol(
) -> None:
    conn = HttpConnection.__new__(HttpConnection)
    conn._server = ("127.0.0.1", 9000)
    req = Request()
    req.path, req.query, req.client = "/peerjs", b"key=k", ("10.0.0.1", 5)
    req.headers = [(b"host", b"h"), (b"cookie", b"c=1"), (b"sec-websocket-key", b"k"),
                   (b"sec-websocket-protocol", b" a, b ,,"), (b"origin", b"o"),
                   (b"sec-websocket-protocol", b"c")]
    scope = conn.websocket_scope(req)
    assert scope["headers"] == [(b"host", b"h"), (b"sec-websocket-protocol", b" a, b ,,"),
                                (b"origin", b"o"), (b"sec-websocket-protocol", b"c")]
    assert scope["subprotocols"] == ("a", "b", "c")
    assert (scope["scheme"], scope["server"], scope["client"]) == (
        "ws", ("127.0.0.1", 9000), ("10.0.0.1", 5))
    req2 = Request()
    req2.headers = [(b"host", b"h")]
    req2.scheme = "https"
    scope2 = conn.websocket_scope(req2)
    assert (scope2["subprotocols"], scope2["scheme"], scope2["headers"]) == (
        (), "wss", [(b"host", b"h")])
