"""Static files (the admin's CSS and JS) under daphne, through WhiteNoise.

WhiteNoise's Django middleware is synchronous, and one synchronous middleware makes
Django run every request through a worker thread. This subclass is async-only: a
request outside ``STATIC_URL`` goes straight on (the PeerJS HTTP routes stay fully
async), and a static file is read in a worker thread and answered whole, which suits
the admin's small assets and avoids streaming a synchronous file iterator under ASGI.
"""

from __future__ import annotations

import os
from typing import Any

from asgiref.sync import markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponse
from whitenoise.middleware import WhiteNoiseMiddleware


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """Serve ``STATIC_URL`` from STATIC_ROOT and the apps' static folders."""

    async_capable = True
    sync_capable = False

    def __init__(self, get_response: Any) -> None:
        super().__init__(get_response)
        markcoroutinefunction(self)

    def add_files(self, root: str, prefix: str | None = None) -> None:
        """Like WhiteNoise's, but a STATIC_ROOT not yet collected is no warning."""
        if self.autorefresh or os.path.isdir(root):
            super().add_files(root, prefix)

    async def __call__(self, request: HttpRequest) -> Any:
        path = request.path_info
        if not path.startswith(self.static_prefix):
            return await self.get_response(request)
        if self.autorefresh:  # DEBUG: look on disk each time
            static_file = await sync_to_async(self.find_file, thread_sensitive=False)(path)
        else:
            static_file = self.files.get(path)
        if static_file is None:
            return await self.get_response(request)
        return await sync_to_async(self._respond, thread_sensitive=False)(static_file, request)

    @staticmethod
    def _respond(static_file: Any, request: HttpRequest) -> HttpResponse:
        found = static_file.get_response(request.method, request.META)
        body = b""
        if found.file is not None:
            with found.file:
                body = found.file.read()
        response = HttpResponse(body, status=int(found.status))
        del response["Content-Type"]
        for name, value in found.headers:
            response[name] = value
        return response
