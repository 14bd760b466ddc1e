"""The edge server: listeners, per-address admission, liveness sweep, dispatch.

:class:`Edge` owns the process's edge state (one per process) with ``start`` /
``shutdown``: the listening servers (the public port, optionally the admin address), the
HTTP connections and websockets they hold, the per-address guard, the Django upstream.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

from edge.access import AccessLog
from edge.asgi_http import serve_asgi
from edge.clientaddr import counts_per_socket
from edge.http import HttpConnection, Request, plain
from edge.options import EdgeOptions
from edge.routes import Routes
from edge.types import ASGIApp
from edge.upstream import Upstream
from edge.websocket import WebSocket
from signalling.guards import IpGuard

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Listener:
    """What one listening socket serves."""

    #: The public port (PeerJS and, unless switched off, the admin) or the admin address.
    public: bool
    scheme: str = "http"
    #: The local address of every connection it accepts, when that is one address (it
    #: listens on a specific one, not a wildcard): no getsockname() per connection.
    address: tuple[str, int] | None = None


def fixed_address(sock: socket.socket) -> tuple[str, int] | None:
    """The address a listening socket is bound to, if it is a specific one (then it is
    the local address of each connection it accepts); None for a wildcard or unknown."""
    try:
        bound = sock.getsockname()
    except OSError:
        return None
    if not isinstance(bound, tuple):
        return None
    try:
        if ipaddress.ip_address(bound[0]).is_unspecified:
            return None
    except ValueError:
        return None
    return (str(bound[0]), int(bound[1]))


class Edge:
    """The asyncio server in front of everything (one per process)."""

    def __init__(self, options: EdgeOptions, ws_app: ASGIApp, routes: Routes,
                 upstream: Upstream | None, *, access_log: AccessLog | None = None,
                 unavailable: tuple[type[BaseException], ...] = (),
                 on_refused: Callable[[str, str], None] | None = None):
        self.options = options
        self.ws_app = ws_app
        self.routes = routes
        self.upstream = upstream
        self.access_log = access_log if options.access_log else None
        self.unavailable = unavailable
        self.on_refused = on_refused
        limits = options.limits
        self.guard = (IpGuard(limits.max_sockets_per_ip, limits.connect_rate,
                              limits.connect_burst)
                      if limits.max_sockets_per_ip is not None else None)
        self.connections: set[HttpConnection] = set()
        self.sockets: set[WebSocket] = set()
        self._servers: list[asyncio.Server] = []
        self._sweeper: asyncio.Task[None] | None = None
        #: The loop the listeners serve on (set by the first :meth:`serve`).
        self.loop: asyncio.AbstractEventLoop | None = None
        self.more_waiting = False  # see edge.websocket.SocketHost

    # --- lifecycle --------------------------------------------------------------------

    async def serve(self, sock: socket.socket, backlog: int, *, public: bool = True,
                    tls: ssl.SSLContext | None = None) -> None:
        """Serve on an already listening socket (asyncio listens again with ``backlog``)."""
        loop = self.loop = asyncio.get_running_loop()
        listener = Listener(public, "https" if tls is not None else "http",
                            fixed_address(sock))
        server = await loop.create_server(
            lambda: HttpConnection(self, listener), sock=sock, backlog=backlog, ssl=tls,
            ssl_handshake_timeout=self.options.limits.head_timeout if tls else None)
        self._servers.append(server)
        if self._sweeper is None:
            self._sweeper = loop.create_task(self._sweep_forever(), name="peerhub-edge-sweep")

    def stop_accepting(self) -> None:
        """Close the listening sockets (connections already made go on)."""
        for server in self._servers:
            server.close()

    async def shutdown(self, grace: float = 3.0) -> None:
        """Stop accepting; give applications ``grace`` seconds to finish, then cancel."""
        self.stop_accepting()
        if self._sweeper is not None:
            self._sweeper.cancel()
        for conn in list(self.connections):
            if not conn.busy:
                conn.transport.close()
        tasks = [t for t in [ws.task for ws in self.sockets] +
                 [c.task for c in self.connections] if t is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        if self.upstream is not None:
            self.upstream.close()
        if self.access_log is not None:
            self.access_log.flush()

    # --- admission --------------------------------------------------------------------

    def counts(self, ip: str) -> bool:
        """Whether a connection from ``ip`` is counted per address (a trusted proxy's
        connections are not: they carry many clients)."""
        return self.guard is not None and counts_per_socket(ip, self.options.trusted_proxies)

    def admit(self, ip: str) -> str | None:
        """Count a new connection from ``ip``; the refusal text if it is over a limit."""
        if self.guard is None:
            return None
        return self.guard.admit(ip, time.monotonic())

    def release(self, ip: str) -> None:
        """An admitted connection from ``ip`` closed."""
        if self.guard is not None:
            self.guard.release(ip)

    def limit_refused(self, text: str, ip: str) -> None:
        """Report a refused connection (the server records it as a limit hit)."""
        if self.on_refused is not None:
            self.on_refused(text, ip)

    def connection_closed(self, conn: HttpConnection) -> None:
        """Called when an HTTP connection closes (not when it became a websocket)."""

    # --- dispatch ---------------------------------------------------------------------

    async def answer(self, conn: HttpConnection, req: Request
                     ) -> tuple[int | None, int | None, bool]:
        """Answer one HTTP request; (status, body bytes, keep the connection)."""
        public = conn.listener.public
        app = self.routes.find(req.path, public)
        if app is not None:
            return await serve_asgi(app, conn, req, self.unavailable)
        if public and not self.options.admin_on_public and \
                req.path.startswith(self.options.admin_prefixes):
            conn.transport.write(plain(404, "Not Found", close=not req.keep_alive))
            return 404, 9, req.keep_alive
        if self.upstream is None:
            conn.transport.write(plain(404, "Not Found", close=not req.keep_alive))
            return 404, 9, req.keep_alive
        return await self.upstream.forward(conn, req)

    # --- logs and liveness ------------------------------------------------------------

    def log_request(self, client: tuple[str, int], method: str, target: str,
                    status: int | None, length: int | None) -> None:
        """One access-log line for an HTTP request."""
        if self.access_log is not None:
            self.access_log.request(client, method, target, status, length)

    def log_action(self, verb: str, path: str, client: tuple[str, int]) -> None:
        """One access-log line for a websocket (``WSCONNECT``, ``WSDISCONNECT``...)."""
        if self.access_log is not None:
            self.access_log.websocket(verb, path, client)

    async def _sweep_forever(self) -> None:
        period = max(0.05, self.options.websocket.ping_interval / 2)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(period)
            self.sweep(loop.time())

    def sweep(self, now: float) -> None:
        """Ping idle websockets, drop unresponsive ones."""
        interval = self.options.websocket.ping_interval
        for ws in list(self.sockets):
            ws.check_alive(now, interval)
