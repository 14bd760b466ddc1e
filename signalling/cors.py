"""CORS for the PeerJS HTTP routes, on every response, errors and preflight included.

Like peerjs-server (``cors`` with ``origin: true``) the request's ``Origin`` is reflected.
A view that finds the origin not allowed for its key sets ``request.peerhub_cors = False``
and the response then carries no ``Access-Control-Allow-Origin``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_vary_headers

ALLOW_METHODS = "GET,HEAD,PUT,PATCH,POST,DELETE"


def is_peerjs_path(path: str) -> bool:
    """Tell whether ``path`` is under the PeerServer's mount path and not the admin."""
    return path.startswith(settings.PEERHUB_PATH) and not path.startswith(
        ("/admin/", "/dashboard/", settings.STATIC_URL))


def preflight(request: HttpRequest) -> HttpResponse:
    """The answer to an ``OPTIONS`` preflight."""
    response = HttpResponse(status=204)
    response["Access-Control-Allow-Methods"] = ALLOW_METHODS
    requested = request.headers.get("Access-Control-Request-Headers")
    if requested:
        response["Access-Control-Allow-Headers"] = requested
    patch_vary_headers(response, ("Origin", "Access-Control-Request-Headers"))
    response["Content-Length"] = "0"
    return response


def add_cors(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """Reflect the request's origin (unless a view refused it) and vary on Origin."""
    origin = request.headers.get("Origin")
    if origin and getattr(request, "peerhub_cors", True):
        response["Access-Control-Allow-Origin"] = origin
    patch_vary_headers(response, ("Origin",))
    return response


class PeerJSCorsMiddleware:
    """Adds CORS headers to every PeerJS route's response and answers preflights."""

    async_capable = True
    sync_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if iscoroutinefunction(self):
            return self._acall(request)
        if not is_peerjs_path(request.path):
            return self.get_response(request)
        if request.method == "OPTIONS":
            return add_cors(request, preflight(request))
        return add_cors(request, self.get_response(request))

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        if not is_peerjs_path(request.path):
            return await self.get_response(request)
        if request.method == "OPTIONS":
            return add_cors(request, preflight(request))
        return add_cors(request, await self.get_response(request))
