"""The PeerJS HTTP routes' pure parts: route matching, methods, CORS, bounded bodies, and
the 0.3.x stream's byte bound (its ASGI side driven in-process)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from signalling.cors import cors_headers, is_peerjs_path, preflight
from signalling.http_api import Route, RouteName, allowed_methods, fresh_id, match_route
from signalling.httpio import BodyTooLarge, ClientGone, read_body
from signalling.legacy import StreamEndpoint, run_stream
from signalling.protocol import ID_PATTERN, STREAM_PADDING


@pytest.mark.parametrize(("path", "route"), [
    ("/", Route(RouteName.BANNER)),
    ("/peerjs/id", Route(RouteName.NEW_ID, "peerjs")),
    ("/peerjs/id/", Route(RouteName.NEW_ID, "peerjs")),
    ("/k/peers", Route(RouteName.PEERS, "k")),
    ("/k/ice", Route(RouteName.ICE, "k")),
    ("/k/a b/t/id", Route(RouteName.STREAM, "k", "a b", "t")),
    ("/k/A/t/offer", Route(RouteName.SIGNAL, "k", "A", "t")),
    ("/k/A/t/leave/", Route(RouteName.SIGNAL, "k", "A", "t")),
    ("/k/A/t/heartbeat", Route(RouteName.NOT_FOUND)),
    ("/k//id", Route(RouteName.NOT_FOUND)),
    ("/k", Route(RouteName.NOT_FOUND)),
    ("/k/x/y", Route(RouteName.NOT_FOUND)),
])
def test_routes_under_the_root_mount(path: str, route: Route) -> None:
    assert match_route(path, "/") == route


def test_routes_under_a_mount_path() -> None:
    assert match_route("/myapp", "/myapp/") == Route(RouteName.BANNER)
    assert match_route("/myapp/", "/myapp/") == Route(RouteName.BANNER)
    assert match_route("/myapp/k/id", "/myapp/") == Route(RouteName.NEW_ID, "k")


def test_django_keeps_its_own_paths() -> None:
    assert not is_peerjs_path("/admin/", "/")
    assert not is_peerjs_path("/dashboard/", "/")
    assert not is_peerjs_path("/static/admin/css/base.css", "/")
    assert not is_peerjs_path("/peerjs/id", "/myapp/")
    assert is_peerjs_path("/myapp", "/myapp/")
    assert is_peerjs_path("/anything/else", "/")


def test_methods_per_route() -> None:
    assert allowed_methods(RouteName.NEW_ID) == ("GET", "HEAD")
    assert allowed_methods(RouteName.STREAM) == ("POST",)
    assert allowed_methods(RouteName.SIGNAL) == ("POST",)


def test_cors_reflects_an_allowed_origin_only() -> None:
    assert cors_headers("http://a") == ((b"access-control-allow-origin", b"http://a"),
                                        (b"vary", b"Origin"))
    assert cors_headers("http://a", allowed=False) == ((b"vary", b"Origin"),)
    assert cors_headers(None) == ((b"vary", b"Origin"),)


def test_preflight_echoes_the_requested_headers() -> None:
    answer = preflight("http://a", "content-type")
    assert answer.status == 204 and answer.body == b""
    assert dict(answer.headers) == {
        b"access-control-allow-origin": b"http://a",
        b"access-control-allow-methods": b"GET,HEAD,PUT,PATCH,POST,DELETE",
        b"access-control-allow-headers": b"content-type",
        b"vary": b"Origin, Access-Control-Request-Headers"}


def test_fresh_ids_pass_the_peerjs_rule_and_skip_taken_ones() -> None:
    seen: list[str] = []

    def taken(candidate: str) -> bool:
        seen.append(candidate)
        return len(seen) < 3

    peer_id = fresh_id(taken)
    assert ID_PATTERN.match(peer_id) and seen[-1] == peer_id and len(seen) == 3


def events(*chunks: bytes) -> Any:
    """A ``receive`` that hands out ``chunks`` as one request body."""
    queue = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
             for i, c in enumerate(chunks)]

    async def receive() -> dict[str, Any]:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    return receive


async def test_body_is_read_up_to_its_limit() -> None:
    assert await read_body({"headers": []}, events(b"ab", b"cd"), 4) == b"abcd"
    with pytest.raises(BodyTooLarge):
        await read_body({"headers": []}, events(b"ab", b"cde"), 4)


async def test_declared_length_past_the_limit_is_refused_before_reading() -> None:
    async def receive() -> dict[str, Any]:
        raise AssertionError("the body must not be read")

    with pytest.raises(BodyTooLarge):
        await read_body({"headers": [(b"content-length", b"5")]}, receive, 4)


async def test_disconnect_during_the_body_is_client_gone() -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    with pytest.raises(ClientGone):
        await read_body({"headers": []}, receive, 4)


async def test_stream_endpoint_is_bounded_in_bytes_not_frames() -> None:
    ep = StreamEndpoint("k", "A", "t", limit=1000)
    for _ in range(9):
        ep.push("x" * 99)  # 100 bytes with its newline
    assert ep.pending_bytes == 900 and not ep.ended
    ep.push("y" * 200)
    assert ep.ended and ep.end_reason == "send buffer limit" and ep.pending_bytes == 0
    ep.push("z")
    assert ep.pending_bytes == 0


async def test_a_stream_whose_writes_block_is_ended_and_released_at_its_byte_limit() -> None:
    """The server's ``send`` stops returning (the client does not read): frames then wait
    in the endpoint, and at the limit the stream ends and ``on_end`` (which frees the id)
    runs without waiting for the blocked write."""
    ep = StreamEndpoint("k", "A", "t", limit=10_000)
    sent: list[dict[str, Any]] = []
    blocked = asyncio.Event()
    never = asyncio.Event()
    released = asyncio.Event()

    async def send(event: dict[str, Any]) -> None:
        sent.append(event)
        if len(sent) >= 3:  # head, padding, then the first frames: the client stops
            blocked.set()
            await never.wait()

    async def receive() -> dict[str, Any]:
        await never.wait()
        return {"type": "http.disconnect"}

    async def on_end() -> None:
        released.set()

    ep.push('{"type":"OPEN"}')
    task = asyncio.ensure_future(run_stream(ep, receive, send, [], on_end))
    await asyncio.wait_for(blocked.wait(), 5)
    for _ in range(200):
        await ep.deliver("o" * 999)
    await asyncio.wait_for(released.wait(), 5)
    assert ep.ended and ep.end_reason == "send buffer limit"
    assert sent[1]["body"] == STREAM_PADDING.encode()
    assert sent[2]["body"] == b'{"type":"OPEN"}\n'
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_stream_writes_frames_then_ends_when_shut() -> None:
    ep = StreamEndpoint("k", "A", "t", limit=10_000)
    sent: list[dict[str, Any]] = []

    async def send(event: dict[str, Any]) -> None:
        sent.append(event)

    never = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await never.wait()
        return {"type": "http.disconnect"}

    async def on_end() -> None:
        return None

    task = asyncio.ensure_future(run_stream(ep, receive, send, [], on_end))
    await ep.deliver('{"type":"OPEN"}')
    await ep.shut('{"type":"ERROR"}', 1008, "test")
    await asyncio.wait_for(task, 5)
    body = b"".join(e.get("body", b"") for e in sent[1:])
    assert body == STREAM_PADDING.encode() + b'{"type":"OPEN"}\n{"type":"ERROR"}\n'
    assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
