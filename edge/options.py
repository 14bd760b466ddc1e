"""The edge's settings as plain values (``peerhub.serve`` reads them from the environment)."""

from __future__ import annotations

from dataclasses import dataclass, field

from peerhub.proxy import TrustedProxies


@dataclass(frozen=True, slots=True)
class Limits:
    """Limits every HTTP connection meets, whatever it turns out to be."""

    #: Bytes of one request head (request line and headers): over it, 431.
    max_head_size: int = 16384
    #: Bytes of one request body: a larger Content-Length gets 413 before the body is
    #: read; a chunked body is cut off with 413 at the limit.
    max_body_size: int = 1024 * 1024
    #: Seconds from the accept (on a kept-alive connection: from the first byte of the
    #: next request) to the end of the request head. Not restarted by each byte.
    head_timeout: float = 20.0
    #: Seconds from the end of a head to the end of its body. Not restarted by each byte.
    body_timeout: float = 20.0
    #: Seconds a kept-alive connection may wait idle for its next request.
    keepalive_timeout: float = 5.0
    #: Open connections from one address (``None``: not counted here).
    max_sockets_per_ip: int | None = 20000
    #: New connections per second from one address, and the burst allowed.
    connect_rate: float = 1000.0
    connect_burst: float = 10000.0
    #: Bytes a response may leave waiting in the kernel-refused write buffer before the
    #: connection is dropped (a reader that does not read).
    send_buffer_limit: int = 2 * 1024 * 1024
    #: Requests read ahead of the one being answered before reading pauses.
    max_pipelined: int = 16


@dataclass(frozen=True, slots=True)
class WebSocketOptions:
    """What every websocket the edge accepts is held to."""

    #: Largest message; a larger one is closed with 1009 before its payload is read.
    max_message_size: int = 4 * 65536
    #: A socket silent this long is pinged; one silent for another interval is dropped.
    ping_interval: float = 30.0
    #: Bytes waiting in the write buffer before a socket that does not read is dropped.
    send_buffer_limit: int = 2 * 1024 * 1024
    #: Frames per second that are not whole data messages (pings, pongs, fragments) and
    #: the burst allowed; ``None``: not limited here.
    frame_rate: float | None = None
    frame_burst: float = 5000.0
    #: A text frame sent before closing with 1008 when the frame rate is exceeded.
    rate_error: str | None = None


@dataclass(frozen=True, slots=True)
class EdgeOptions:
    """Everything :class:`edge.server.Edge` needs."""

    ws_path: str = "/peerjs"
    limits: Limits = field(default_factory=Limits)
    websocket: WebSocketOptions = field(default_factory=WebSocketOptions)
    #: Whose ``X-Forwarded-For`` / ``X-Forwarded-Proto`` is read (:mod:`peerhub.proxy`);
    #: None: nobody's, the socket's peer is the client.
    trusted_proxies: TrustedProxies | None = None
    #: Serve the admin and dashboard on the public listener (``False``: 404 there).
    admin_on_public: bool = True
    #: Path prefixes that belong to the admin and dashboard.
    admin_prefixes: tuple[str, ...] = ("/admin/", "/dashboard/")
    #: Access log on (one line per request and websocket connect and disconnect).
    access_log: bool = True
