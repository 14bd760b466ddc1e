"""The edge's route table: exact paths to ASGI applications.

Lookups are exact (the path without its query string), checked in this order:

1. paths registered with :meth:`Routes.add` (``GET /healthz``, ``/readyz``, ``/metrics``
   from the cluster and ops code; ``admin=True`` serves them on the admin listener too);
2. the ``resolvers``: functions from a path to an application or None (the PeerJS HTTP
   routes: ``signalling.http_api.peerjs_http_app``), public listener only;
3. otherwise None: the request goes to Django.
"""

from __future__ import annotations

from collections.abc import Callable

from edge.types import ASGIApp

Resolver = Callable[[str], ASGIApp | None]


class Routes:
    """Exact path -> ASGI application, for the public and the admin listener."""

    def __init__(self) -> None:
        self._public: dict[str, ASGIApp] = {}
        self._admin: dict[str, ASGIApp] = {}
        self._resolvers: list[Resolver] = []

    def add(self, path: str, app: ASGIApp, *, admin: bool = True) -> None:
        """Serve ``app`` at exactly ``path`` (and on the admin listener if ``admin``)."""
        self._public[path] = app
        if admin:
            self._admin[path] = app

    def add_resolver(self, resolver: Resolver) -> None:
        """Ask ``resolver`` for paths not registered exactly (public listener only)."""
        self._resolvers.append(resolver)

    def find(self, path: str, public: bool) -> ASGIApp | None:
        """The application for ``path`` on a public or admin listener, or None."""
        table = self._public if public else self._admin
        app = table.get(path)
        if app is not None or not public:
            return app
        for resolver in self._resolvers:
            app = resolver(path)
            if app is not None:
                return app
        return None
