"""Plain ASGI HTTP plumbing for the PeerJS routes: requests in, responses out.

No Django here: a request is the ASGI scope plus its ``receive``; a response is a small
immutable value turned into the two ASGI ``send`` events. Bodies are read with a bound,
and a declared ``Content-Length`` past it is refused before anything is read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
#: An ASGI application: ``await app(scope, receive, send)``.
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Headers = tuple[tuple[bytes, bytes], ...]

TEXT_PLAIN = b"text/plain; charset=utf-8"
TEXT_HTML = b"text/html; charset=utf-8"
JSON = b"application/json; charset=utf-8"
OCTET_STREAM = b"application/octet-stream"


class BodyTooLarge(Exception):
    """A request body is (or says it is) larger than the route accepts."""


class ClientGone(Exception):
    """The client disconnected before its request body was complete."""


@dataclass(frozen=True, slots=True)
class Response:
    """A complete HTTP response: status, content type, body and extra headers."""

    status: int
    body: bytes = b""
    content_type: bytes | None = TEXT_PLAIN
    headers: Headers = ()

    def with_headers(self, extra: Headers) -> Response:
        """The same response with ``extra`` headers appended."""
        return Response(self.status, self.body, self.content_type, self.headers + extra)


def text(status: int, body: str, content_type: bytes = TEXT_PLAIN) -> Response:
    """A text response."""
    return Response(status, body.encode(), content_type)


def json_response(data: object, status: int = 200) -> Response:
    """A JSON response, encoded as peerjs-server (express) does: compact."""
    return Response(status, orjson.dumps(data), JSON)


def header(scope: Scope, name: bytes) -> str | None:
    """One request header (``name`` lower-case), decoded as latin-1, or None."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def declared_length(scope: Scope) -> int | None:
    """The request's ``Content-Length`` as a number; None when absent or unreadable."""
    raw = header(scope, b"content-length")
    if raw is None or not raw.strip().isdigit():
        return None
    return int(raw)


def client_ip(scope: Scope) -> str:
    """The client's address as the server saw it (after any trusted proxy headers)."""
    client = scope.get("client") or ("",)
    return str(client[0])


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body, at most ``limit`` bytes.

    Raises :class:`BodyTooLarge` as soon as the declared length or the bytes received
    pass ``limit`` (nothing more is read), :class:`ClientGone` on a disconnect.
    """
    declared = declared_length(scope)
    if declared is not None and declared > limit:
        raise BodyTooLarge(declared)
    parts: list[bytes] = []
    size = 0
    while True:
        event = await receive()
        if event["type"] == "http.disconnect":
            raise ClientGone()
        chunk = event.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(size)
        parts.append(chunk)
        if not event.get("more_body", False):
            return b"".join(parts)


def start_event(status: int, headers: list[tuple[bytes, bytes]]) -> Message:
    """The ``http.response.start`` event."""
    return {"type": "http.response.start", "status": status, "headers": headers}


async def send_response(send: Send, response: Response, head_only: bool = False) -> None:
    """Send ``response`` (headers only for ``HEAD``, with the body's length)."""
    headers = list(response.headers)
    if response.content_type is not None:
        headers.append((b"content-type", response.content_type))
    headers.append((b"content-length", str(len(response.body)).encode()))
    await send(start_event(response.status, headers))
    await send({"type": "http.response.body", "body": b"" if head_only else response.body})
