"""The websocket scope the edge builds for an upgrade (edge.http.HttpConnection)."""

from __future__ import annotations

from edge.http import HttpConnection, Request


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
