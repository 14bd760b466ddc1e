"""Start daphne with peerhub's settings: ``python -m peerhub.serve``.

By default (``WEBSOCKET_FRONT=true``) the public port belongs to peerhub's websocket front
(:mod:`peerhub.front`) in daphne's process and event loop: it serves the PeerJS socket
itself and hands every other connection to daphne, which listens only on a private
unix socket. ``WEBSOCKET_FRONT=false`` lets daphne serve the public port alone.

The daphne options that matter to a PeerServer come from the same environment as the
rest: address and port, a listen backlog large enough for connection bursts, websocket
pings sized from ALIVE_TIMEOUT (dead sockets are closed and their ids freed within it),
no daphne-side socket lifetime limit, and MAX_MESSAGE_SIZE as the frame limit (a larger
frame is closed with code 1009 by the consumer).
"""

from __future__ import annotations

import asyncio
import atexit
import gc
import math
import os
import shutil
import socket
import sys
import tempfile
from typing import TYPE_CHECKING

from peerhub.env import env_bool, env_int, env_str
from peerhub.proxy import trusted_from_env

if TYPE_CHECKING:
    from peerhub.front import FrontOptions


def daphne_argv(endpoint: str | None = None) -> list[str]:
    """The daphne command line for the current environment.

    ``endpoint`` (a Twisted endpoint string) replaces the public TCP port, for when the
    websocket front owns that port.
    """
    host = env_str("HOST", "0.0.0.0")
    port = env_int("PORT", 9000)
    backlog = env_int("LISTEN_BACKLOG", 4096, minimum=1)
    alive_ms = env_int("ALIVE_TIMEOUT", 60000, minimum=100)
    max_size = env_int("MAX_MESSAGE_SIZE", 65536, minimum=1024)
    half = max(1, math.ceil(alive_ms / 2000))  # daphne takes whole seconds
    # The consumer closes frames over MAX_MESSAGE_SIZE with 1009; daphne's own limit,
    # which drops the TCP connection, only bounds memory for frames far beyond it.
    hard_limit = max_size * 4
    interface = host.replace(":", r"\:")
    if endpoint is None:
        endpoint = f"tcp:port={port}:interface={interface}:backlog={backlog}"
    return [
        "-e", endpoint,
        "--ping-interval", str(half),
        "--ping-timeout", str(half),
        "--websocket_timeout", "-1",
        "--websocket-max-message-size", str(hard_limit),
        "--websocket-max-frame-size", str(hard_limit),
        "--application-close-timeout", "5",
        "-v", env_str("DAPHNE_VERBOSITY", "1"),
        # No --proxy-headers: daphne takes X-Forwarded-For's left end, which the client
        # writes. peerhub.asgi reads proxy headers itself (peerhub.proxy).
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


def front_options() -> FrontOptions:
    """The websocket front's options, from Django settings (after daphne loaded them)."""
    from django.conf import settings

    from peerhub.front import FrontOptions
    from signalling.config import get_config

    cfg = get_config()
    trusted = trusted_from_env()
    return FrontOptions(
        ws_path=cfg.ws_path,
        # The consumer closes messages over MAX_MESSAGE_SIZE with ERROR and 1009; the
        # front's own limit (1009 without reading the payload) only bounds memory.
        max_message_size=cfg.max_message_size * 4,
        ping_interval=cfg.alive_timeout / 2,
        handshake_timeout=env_int("HANDSHAKE_TIMEOUT", 20, minimum=1),
        send_buffer_limit=settings.PEERHUB_SEND_BUFFER_LIMIT,
        proxy_headers=trusted is not None,
        trusted_proxies=trusted,
    )


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


def server_with_front(sock: socket.socket, backlog: int) -> type:
    """daphne's Server class, extended to start the websocket front on ``sock``."""
    from daphne.server import Server
    from twisted.internet import defer, reactor

    from peerhub.front import Front, adopt_into_twisted
    from peerhub.logredact import RedactingAccessLog

    class PeerhubServer(Server):
        def run(self) -> None:
            reactor.callWhenRunning(self._start_front)
            super().run()

        def kill_all_applications(self) -> defer.Deferred[None]:
            # daphne cancels every HTTP request in flight when shutdown begins; during a
            # drain the node still answers (/readyz 503, the PeerJS routes 503), so the
            # cancelling waits until the drain is over.
            from peerhub.asgi import drain

            drained = defer.Deferred.fromFuture(asyncio.ensure_future(drain()))
            drained.addBoth(lambda _: super(PeerhubServer, self).kill_all_applications())
            return drained

        def _start_front(self) -> None:
            access = self.action_logger
            from peerhub.asgi import peer_socket_app

            front = Front(front_options(), peer_socket_app,
                          adopt_into_twisted(self.http_factory),
                          access.websocket if isinstance(access, RedactingAccessLog) else None)
            self.front_started = asyncio.ensure_future(front.start(sock, backlog))
            self.front_started.add_done_callback(self._front_start_done)

            async def drain_then_shutdown() -> None:
                from peerhub.asgi import drain

                await drain()  # the peers leave over DRAIN_WINDOW first
                await front.shutdown()

            def stop() -> defer.Deferred[None]:
                return defer.Deferred.fromFuture(asyncio.ensure_future(drain_then_shutdown()))

            reactor.addSystemEventTrigger("before", "shutdown", stop)  # type: ignore[arg-type]

        def _front_start_done(self, started: asyncio.Future[None]) -> None:
            if not started.cancelled() and started.exception() is not None:
                print(f"peerhub: the websocket front did not start: {started.exception()}",
                      file=sys.stderr, flush=True)
                reactor.stop()  # type: ignore[misc]

    return PeerhubServer


def main() -> None:
    """Run daphne in this process (behind the websocket front unless switched off), or
    supervise ``WORKERS`` such processes sharing the port."""
    from peerhub.startup import prepare

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
    use_uvloop()
    import daphne.cli
    from daphne.cli import CommandLineInterface

    from peerhub.logredact import RedactingAccessLog

    daphne.cli.AccessLogGenerator = RedactingAccessLog

    from twisted.internet import reactor

    reactor.callWhenRunning(tune_gc)  # once the application is loaded
    host, port = env_str("HOST", "0.0.0.0"), env_int("PORT", 9000)
    cli = CommandLineInterface()
    if env_bool("WEBSOCKET_FRONT", True):
        backlog = env_int("LISTEN_BACKLOG", 4096, minimum=1)
        try:
            sock = listen_socket(host, port, backlog, env_bool("REUSE_PORT", False))
        except OSError as exc:
            print(f"peerhub: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
            sys.exit(1)
        private = tempfile.mkdtemp(prefix="peerhub-daphne-")
        atexit.register(shutil.rmtree, private, True)
        cli.server_class = server_with_front(sock, backlog)
        argv = daphne_argv(f"unix:{os.path.join(private, 'http.sock')}:mode=600")
    else:
        argv = daphne_argv()
    print(f"peerhub: serving on {host}:{port}", flush=True)
    cli.run(argv)
    sys.exit(0)


if __name__ == "__main__":
    main()
