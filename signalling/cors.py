"""CORS for the PeerJS HTTP routes, on every response, errors and preflight included.

Like peerjs-server (``cors`` with ``origin: true``) the request's ``Origin`` is reflected,
with ``Vary: Origin``; a key whose allowed origins exclude the request's origin gets no
``Access-Control-Allow-Origin`` (the browser then refuses the answer). Pure functions
over header tuples; the ASGI apps in :mod:`signalling.http_api` add them.
"""

from __future__ import annotations

from django.conf import settings

from signalling.httpio import Headers, Response

ALLOW_METHODS = b"GET,HEAD,PUT,PATCH,POST,DELETE"
_VARY_ORIGIN: Headers = ((b"vary", b"Origin"),)


def is_peerjs_path(path: str, mount: str) -> bool:
    """Tell whether ``path`` is under the PeerServer's mount path and not Django's."""
    if path == mount.rstrip("/") and mount != "/":
        return True
    return path.startswith(mount) and not path.startswith(
        ("/admin/", "/dashboard/", settings.STATIC_URL))


def cors_headers(origin: str | None, allowed: bool = True) -> Headers:
    """The CORS headers of an ordinary answer to a request from ``origin``."""
    if origin and allowed:
        return ((b"access-control-allow-origin", origin.encode("latin-1")), *_VARY_ORIGIN)
    return _VARY_ORIGIN


def preflight(origin: str | None, requested_headers: str | None) -> Response:
    """The answer to an ``OPTIONS`` preflight: 204 with the methods and headers allowed."""
    headers: list[tuple[bytes, bytes]] = []
    if origin:
        headers.append((b"access-control-allow-origin", origin.encode("latin-1")))
    headers.append((b"access-control-allow-methods", ALLOW_METHODS))
    if requested_headers:
        headers.append((b"access-control-allow-headers", requested_headers.encode("latin-1")))
    headers.append((b"vary", b"Origin, Access-Control-Request-Headers"))
    return Response(204, b"", None, tuple(headers))
