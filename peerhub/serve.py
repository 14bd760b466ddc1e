"""Start peerhub: ``python -m peerhub.serve``.

One process, one event loop (uvloop). The public port belongs to the edge
(:mod:`edge`), which serves the whole PeerJS protocol itself and proxies everything else
to Django. Django runs on stock daphne in the same process and loop (daphne runs Twisted
on asyncio), listening only on a unix socket in a private temporary directory: the
admin and dashboard read the in-process hub. The edge is started with daphne's reactor
(``reactor.callWhenRunning``) and stopped by a system event trigger before it shuts
down; nothing of daphne, Twisted or autobahn is patched.

``ADMIN_PORT`` adds a listener that serves Django (and the health and metrics routes)
only; ``ADMIN_ON_PUBLIC_PORT=false`` answers 404 for the admin and dashboard on the
public port. ``TLS_CERT_FILE`` and ``TLS_KEY_FILE`` put TLS on the public port.
"""

from __future__ import annotations

import asyncio
import atexit
import faulthandler
import gc
import os
import shutil
import signal
import socket
import ssl
import sys
import tempfile
import threading
from typing import TYPE_CHECKING

from peerhub.env import ImproperEnvironment, env_bool, env_int, env_str
from peerhub.proxy import trusted_from_env

if TYPE_CHECKING:
    from edge.options import EdgeOptions
    from edge.routes import Routes
    from edge.server import Edge


def daphne_argv(endpoint: str) -> list[str]:
    """daphne's command line: Django on ``endpoint`` (a Twisted endpoint string).

    daphne trusts the forwarding headers (``--proxy-headers``): only the edge can reach
    its socket, and the edge drops what the client sent in them and writes exactly one
    address, the client's as :mod:`peerhub.proxy` found it (so daphne's left-end rule
    reads the right one). Its access log is off: the edge writes one line per request.
    """
    return [
        "-e", endpoint,
        "--proxy-headers",
        "--access-log", os.devnull,
        "--application-close-timeout", "5",
        "-v", env_str("DAPHNE_VERBOSITY", "1"),
        "peerhub.asgi:application",
    ]


def use_uvloop() -> bool:
    """Install uvloop's event loop policy (``UVLOOP``, default true) when available.

    It must happen before daphne creates its event loop at import.
    """
    if not env_bool("UVLOOP", True):
        return False
    try:
        import uvloop
    except ImportError:
        print("peerhub: uvloop is not installed; using asyncio's event loop", flush=True)
        return False
    uvloop.install()
    return True


def listen_socket(host: str, port: int, backlog: int, reuse_port: bool = False
                  ) -> socket.socket:
    """A bound, listening, non-blocking TCP socket (errors such as a busy port now).

    ``reuse_port`` lets several processes listen on the port (``WORKERS``).
    """
    family, kind, proto, _, addr = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(addr)
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def tls_context() -> ssl.SSLContext | None:
    """The public port's TLS context from ``TLS_CERT_FILE``/``TLS_KEY_FILE``, or None."""
    cert, key = env_str("TLS_CERT_FILE", ""), env_str("TLS_KEY_FILE", "")
    if not cert and not key:
        return None
    if not cert or not key:
        raise ImproperEnvironment("TLS_CERT_FILE and TLS_KEY_FILE must be set together")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ImproperEnvironment(f"cannot load TLS_CERT_FILE/TLS_KEY_FILE: {exc}") from exc
    context.set_alpn_protocols(["http/1.1"])
    return context


def edge_options() -> EdgeOptions:
    """The edge's options, from the environment and Django settings."""
    from django.conf import settings

    from edge.options import EdgeOptions, Limits, WebSocketOptions
    from signalling.config import get_config
    from signalling.protocol import Errors

    cfg = get_config()
    limits = Limits(
        max_head_size=env_int("MAX_HEAD_SIZE", 16384, minimum=1024),
        max_body_size=env_int("MAX_BODY_SIZE", 1024 * 1024, minimum=1024),
        head_timeout=env_int("HANDSHAKE_TIMEOUT", 20, minimum=1),
        body_timeout=env_int("BODY_TIMEOUT", 20, minimum=1),
        keepalive_timeout=env_int("KEEPALIVE_TIMEOUT", 5, minimum=1),
        max_sockets_per_ip=cfg.max_sockets_per_ip,
        connect_rate=cfg.connect_rate,
        connect_burst=cfg.connect_burst,
        send_buffer_limit=settings.PEERHUB_SEND_BUFFER_LIMIT,
    )
    websocket = WebSocketOptions(
        # The consumer closes messages over MAX_MESSAGE_SIZE with ERROR and 1009; the
        # edge's own limit (1009 without reading the payload) only bounds memory.
        max_message_size=cfg.max_message_size * 4,
        ping_interval=cfg.alive_timeout / 2,
        send_buffer_limit=settings.PEERHUB_SEND_BUFFER_LIMIT,
        frame_rate=cfg.rate_limit,
        frame_burst=max(cfg.rate_limit, cfg.rate_burst),
        rate_error=Errors.RATE_LIMIT,
    )
    return EdgeOptions(
        ws_path=cfg.ws_path, limits=limits, websocket=websocket,
        trusted_proxies=trusted_from_env(),
        admin_on_public=env_bool("ADMIN_ON_PUBLIC_PORT", True),
        access_log=env_int("DAPHNE_VERBOSITY", 1) >= 1,
    )


def edge_routes() -> Routes:
    """The edge's route table: the PeerJS HTTP routes, then what other parts register.

    Health and metrics entries are added here (``routes.add("/healthz", app)``).
    """
    from edge.routes import Routes
    from signalling.health import ROUTES as HEALTH_ROUTES
    from signalling.http_api import peerjs_http_app
    from signalling.metrics_http import METRICS_PATH, metrics_app
    from signalling.unavailable import gated

    routes = Routes()
    routes.add(METRICS_PATH, metrics_app)  # on the admin address too
    for path, app in HEALTH_ROUTES.items():  # /healthz, /readyz: on the admin address too
        routes.add(path, app)
    # 503 while this node drains, 403 for a banned address, before the PeerJS routes.
    routes.add_resolver(lambda path: gated(peerjs_http_app(path)))
    return routes


def unavailable_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean a backing store is down: the edge answers them with 503."""
    from django.db import DatabaseError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from signalling.errors import ClusterUnavailable

    return (ClusterUnavailable, DatabaseError, RedisConnectionError, RedisTimeoutError)


def build_edge(django_socket: str) -> Edge:
    """The edge for this process, with Django behind it on ``django_socket``."""
    from edge.access import AccessLog
    from edge.server import Edge
    from edge.upstream import Upstream
    from peerhub.asgi import peer_socket_app
    from signalling.metrics import limit_hit

    def refused(text: str, ip: str) -> None:
        limit_hit("", "per-address", ip)

    return Edge(edge_options(), peer_socket_app, edge_routes(), Upstream(django_socket),
                access_log=AccessLog(), unavailable=unavailable_errors(),
                on_refused=refused)


def tune_gc() -> None:
    """Keep the cyclic garbage collector off the connection path.

    Everything loaded at start-up (Django, the app) is moved out of the collector's
    generations, and young collections run less often: with thousands of sockets alive,
    full collections otherwise stall the event loop during connection bursts (the bench
    measured 20-30 % more connections per second with this).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


class EdgeRunner:
    """Starts the edge when daphne's reactor runs and stops it before the reactor stops."""

    def __init__(self, django_socket: str, public: socket.socket,
                 admin: socket.socket | None, tls: ssl.SSLContext | None, backlog: int):
        self.django_socket = django_socket
        self.public = public
        self.admin = admin
        self.tls = tls
        self.backlog = backlog
        self.edge: Edge | None = None

    def install(self) -> None:
        """Register with the reactor (before daphne runs it)."""
        from twisted.internet import reactor

        reactor.callWhenRunning(self._start)

    def _start(self) -> None:
        from twisted.internet import defer, reactor

        from signalling.node import get_node

        tune_gc()  # once the application is loaded
        loop = asyncio.get_event_loop()
        print(f"peerhub: event loop {type(loop).__module__}.{type(loop).__name__}",
              flush=True)
        # The hub's tasks and the control-plane listener, once the loop turns (startup
        # triggers may run before asyncio counts the loop as running).
        loop.call_soon(lambda: asyncio.ensure_future(get_node().start()))
        self.edge = build_edge(self.django_socket)
        started = asyncio.ensure_future(self._serve(self.edge))
        started.add_done_callback(self._started)

        def stop() -> defer.Deferred[None]:
            return defer.Deferred.fromFuture(asyncio.ensure_future(self.stop()))

        reactor.addSystemEventTrigger("before", "shutdown", stop)  # type: ignore[arg-type]

    async def _serve(self, edge: Edge) -> None:
        await edge.serve(self.public, self.backlog, public=True, tls=self.tls)
        if self.admin is not None:
            await edge.serve(self.admin, self.backlog, public=False)

    def _started(self, started: asyncio.Future[None]) -> None:
        from twisted.internet import reactor

        if not started.cancelled() and started.exception() is not None:
            print(f"peerhub: the edge did not start: {started.exception()}",
                  file=sys.stderr, flush=True)
            reactor.stop()  # type: ignore[misc]

    async def stop(self) -> None:
        """Drain the node (signalling.node: stop admitting, /readyz 503, peers closed with
        1001 over DRAIN_WINDOW, each id released first), then stop the edge."""
        from signalling.node import get_node

        await get_node().drain()
        if self.edge is not None:
            self.edge.stop_accepting()
            await self.edge.shutdown()


#: Seconds the interpreter's own exit (atexit handlers, joining threads) may take after
#: the server has stopped, before :func:`exit_watchdog` ends the process.
EXIT_GRACE = 10.0


def exit_watchdog(grace: float = EXIT_GRACE) -> None:
    """End the process if its exit hangs, after showing where.

    Once daphne's reactor has stopped, Python still runs atexit handlers and joins
    every non-daemon thread (a database write that never answers would keep a writer
    thread, and so the process, alive after SIGTERM). A daemon timer gives that
    ``grace`` seconds, then prints every thread's stack to stderr and exits 1.
    """
    def fire() -> None:
        names = ", ".join(t.name for t in threading.enumerate()
                          if t is not threading.current_thread())
        print(f"peerhub: exiting took over {grace:.0f}s; still running: {names}",
              file=sys.stderr, flush=True)
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        os._exit(1)

    timer = threading.Timer(grace, fire)
    timer.daemon = True
    timer.start()


def open_listeners(backlog: int) -> tuple[socket.socket, socket.socket | None]:
    """The public listening socket and the admin one (``ADMIN_PORT``), or exit."""
    host, port = env_str("HOST", "0.0.0.0"), env_int("PORT", 9000)
    try:
        public = listen_socket(host, port, backlog, env_bool("REUSE_PORT", False))
    except OSError as exc:
        print(f"peerhub: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        sys.exit(1)
    admin_port = env_int("ADMIN_PORT", 0)
    if not admin_port:
        return public, None
    admin_host = env_str("ADMIN_HOST", "127.0.0.1")
    try:
        admin = listen_socket(admin_host, admin_port, backlog,
                              env_bool("REUSE_PORT", False))
    except OSError as exc:
        print(f"peerhub: cannot listen on {admin_host}:{admin_port}: {exc}",
              file=sys.stderr)
        sys.exit(1)
    print(f"peerhub: admin on {admin_host}:{admin_port}", flush=True)
    return public, admin


def main() -> None:
    """Run the edge and daphne in this process, or supervise ``WORKERS`` such processes
    sharing the port."""
    from peerhub.startup import prepare

    try:
        # Before prepare(): its django.setup() imports daphne.server, which makes the
        # reactor's event loop at import, from whatever loop policy is installed then.
        use_uvloop()
    except ImproperEnvironment:
        pass  # a bad UVLOOP: prepare() names it and exits 2
    prepare(sys.argv[1:])  # --help, --version; every setting checked; exit 2 on a bad one
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peerhub.settings")
    workers = env_int("WORKERS", 1, minimum=1)
    if workers > 1:
        from peerhub.workers import WorkersRefused, supervise

        try:
            sys.exit(supervise(workers))
        except WorkersRefused as exc:
            print(f"peerhub: {exc}", file=sys.stderr, flush=True)
            sys.exit(2)
    try:
        tls = tls_context()
    except ImproperEnvironment as exc:
        print(f"peerhub: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
    from daphne.cli import CommandLineInterface

    backlog = env_int("LISTEN_BACKLOG", 4096, minimum=1)
    public, admin = open_listeners(backlog)
    private = tempfile.mkdtemp(prefix="peerhub-daphne-")
    atexit.register(shutil.rmtree, private, True)
    django_socket = os.path.join(private, "http.sock")
    EdgeRunner(django_socket, public, admin, tls, backlog).install()
    scheme = "https" if tls is not None else "http"
    print(f"peerhub: serving on {scheme}://{env_str('HOST', '0.0.0.0')}:"
          f"{env_int('PORT', 9000)}", flush=True)
    # ``kill -USR2 PID`` prints every thread's stack to stderr (a hung process, live).
    faulthandler.register(signal.SIGUSR2, all_threads=True)
    CommandLineInterface().run(daphne_argv(f"unix:{django_socket}:mode=600"))
    exit_watchdog()
    sys.exit(0)


if __name__ == "__main__":
    main()
