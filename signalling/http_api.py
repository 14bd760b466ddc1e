"""The PeerServer's HTTP routes under ``PEERHUB_PATH``, as plain ASGI applications.

:func:`peerjs_http_app` maps a request path to the application serving it (or None for
paths that are Django's: the admin, the dashboard, static files, anything outside the
mount path). The routes and their answers are peerjs-server's:

- ``GET {path}``: the banner (JSON);
- ``GET {key}/id``: a fresh id as ``text/html`` with no newline;
- ``GET {key}/peers``: the key's ids when discovery is on, else 401 ``Unauthorized``;
- ``GET {key}/ice?id=PEER[&token=T]``: ``iceServers`` (STUN, and TURN credentials);
- ``POST {key}/{id}/{token}/id``: the 0.3.x XHR stream (:mod:`signalling.legacy`);
- ``POST {key}/{id}/{token}/offer|candidate|answer|leave``: 0.3.x signalling.

Every answer carries CORS headers (:mod:`signalling.cors`), ``OPTIONS`` is the preflight,
``HEAD`` is served wherever ``GET`` is, another method is 405. Request bodies are bounded
by MAX_MESSAGE_SIZE (413), and an unreachable cluster or database is 503, never a 500.
Decisions are pure functions (:func:`match_route`, :func:`allowed_methods`); each
handler is a thin coroutine from a :class:`Request` to a :class:`Response`.

What the applications expect of the server that runs them (ASGI 3, HTTP scope):
``path`` percent-decoded, ``method``, ``query_string``, lower-case header names,
``client`` (after any trusted proxy headers); ``receive`` gives the body as
``http.request`` events, then ``http.disconnect`` when the client goes (the 0.3.x stream
watches for it). A streaming response (the stream, ``more_body=True``) relies on the
server to bound what it buffers for a client that does not read: ``send`` may wait
(then frames wait in the endpoint, bounded by SEND_BUFFER_LIMIT) or the server drops
the connection past SEND_BUFFER_LIMIT and reports ``http.disconnect``. A 413 carries
``Connection: close``: the rest of the body is never read.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from urllib.parse import parse_qs

import orjson
from django.conf import settings
from django.db import DatabaseError
from redis.exceptions import RedisError

from apikeys.tenants import Tenant, get_tenant
from signalling import protocol as p
from signalling.config import ServerConfig, get_config
from signalling.cors import cors_headers, is_peerjs_path, preflight
from signalling.decisions import Claim
from signalling.errors import ClusterUnavailable
from signalling.httpio import (
    JSON,
    OCTET_STREAM,
    TEXT_HTML,
    ASGIApp,
    BodyTooLarge,
    ClientGone,
    Receive,
    Response,
    Scope,
    Send,
    client_ip,
    header,
    json_response,
    read_body,
    send_response,
    text,
)
from signalling.hub import Limits
from signalling.keywatch import ensure_key_watcher
from signalling.legacy import Sender, StreamEndpoint, run_stream
from signalling.metrics import INVALID_KEY, ORIGIN, limit_hit
from signalling.ratelimit import TokenBucket
from signalling.runtime import get_hub, get_ip_guard
from signalling.sessions import SessionInfo, get_recorder
from signalling.tokens import turn_credentials

logger = logging.getLogger(__name__)

UNAUTHORIZED = "Unauthorized"
#: peerjs-server 0.2.x retried an unknown sender's id once after this many seconds.
RETRY_DELAY = 0.025
#: Failures that mean "the cluster (Redis) or the database cannot be reached now".
UNAVAILABLE = (ClusterUnavailable, RedisError, DatabaseError, OSError)
_MAX_BUCKETS = 100_000


class RouteName(StrEnum):
    """The PeerJS HTTP routes."""

    BANNER = "banner"
    NEW_ID = "id"
    PEERS = "peers"
    ICE = "ice"
    STREAM = "stream"
    SIGNAL = "signal"
    NOT_FOUND = "not found"


#: The 0.3.x POST routes' last segment.
ACTIONS = frozenset({"offer", "candidate", "answer", "leave"})
_GET = ("GET", "HEAD")
_POST = ("POST",)


@dataclass(frozen=True, slots=True)
class Route:
    """A matched route and its path segments."""

    name: RouteName
    key: str = ""
    peer_id: str = ""
    token: str = ""


def match_route(path: str, mount: str) -> Route:
    """The route ``path`` names under ``mount`` (which begins and ends with ``/``).

    A trailing slash is tolerated, as express does; empty segments match nothing.
    """
    if path == mount.rstrip("/"):
        return Route(RouteName.BANNER)
    rest = path[len(mount):]
    if rest.endswith("/"):
        rest = rest[:-1]
    if rest == "":
        return Route(RouteName.BANNER)
    parts = rest.split("/")
    if "" in parts:
        return Route(RouteName.NOT_FOUND)
    if len(parts) == 2:
        name = {"id": RouteName.NEW_ID, "peers": RouteName.PEERS,
                "ice": RouteName.ICE}.get(parts[1], RouteName.NOT_FOUND)
        return Route(name, parts[0]) if name is not RouteName.NOT_FOUND else Route(name)
    if len(parts) == 4 and (parts[3] == "id" or parts[3] in ACTIONS):
        name = RouteName.STREAM if parts[3] == "id" else RouteName.SIGNAL
        return Route(name, parts[0], parts[1], parts[2])
    return Route(RouteName.NOT_FOUND)


def allowed_methods(route: RouteName) -> tuple[str, ...]:
    """The methods a route answers (``OPTIONS``, the preflight, is always answered)."""
    if route in (RouteName.STREAM, RouteName.SIGNAL):
        return _POST
    return _GET


def fresh_id(taken: Callable[[str], bool] | None = None) -> str:
    """A new UUID v4 id (it passes the PeerJS id rule) for which ``taken`` is false."""
    while True:
        candidate = str(uuid.uuid4())
        if taken is None or not taken(candidate):
            return candidate


def ice_servers(tenant: Tenant, peer_id: str, now: float) -> dict[str, object]:
    """The ``/ice`` answer: the key's STUN servers, then TURN credentials if configured."""
    servers: list[dict[str, object]] = []
    if tenant.stun_urls:
        servers.append({"urls": list(tenant.stun_urls)})
    ttl = settings.PEERHUB_TURN_TTL
    if settings.PEERHUB_TURN_URLS and settings.PEERHUB_TURN_SECRET and peer_id:
        username, credential = turn_credentials(settings.PEERHUB_TURN_SECRET, peer_id,
                                                int(now) + ttl)
        servers.append({"urls": settings.PEERHUB_TURN_URLS, "username": username,
                        "credential": credential})
    return {"iceServers": servers, "ttl": ttl}


class PostRates:
    """The per-peer message rate of 0.3.x POSTs: one token bucket per (key, id, token).

    Rate and burst are the key's (or RATE_LIMIT and RATE_BURST), as for a websocket.
    """

    def __init__(self, cfg: ServerConfig) -> None:
        self._cfg = cfg
        self._buckets: dict[tuple[str, str, str], TokenBucket] = {}

    def take(self, tenant: Tenant, peer_id: str, token: str, now: float) -> bool:
        """Spend one message for the peer; tell whether it is within its rate."""
        ident = (tenant.key, peer_id, token)
        bucket = self._buckets.get(ident)
        if bucket is None:
            if len(self._buckets) >= _MAX_BUCKETS:
                self._buckets.clear()
            rate, burst = tenant.message_rate(self._cfg.rate_limit, self._cfg.rate_burst)
            bucket = self._buckets[ident] = TokenBucket(rate, burst, now)
        return bucket.take(now)


class Request:
    """One HTTP request to a PeerJS route."""

    __slots__ = ("scope", "receive", "route", "origin", "cors_allowed")

    def __init__(self, scope: Scope, receive: Receive, route: Route) -> None:
        self.scope = scope
        self.receive = receive
        self.route = route
        self.origin = header(scope, b"origin")
        self.cors_allowed = True

    def query(self, name: str) -> str:
        """The first value of query parameter ``name``, or ``""``."""
        values = parse_qs(bytes(self.scope.get("query_string", b"")).decode("latin-1")
                          ).get(name)
        return values[0] if values else ""

    async def tenant(self) -> Tenant | None:
        """The key's tenant if it is active and allows this request's origin.

        A refused origin also takes the CORS headers away from the answer.
        """
        tenant = await get_tenant(self.route.key)
        if tenant is None:
            # Counted under no key (any string can be asked for); the log names it.
            limit_hit("", INVALID_KEY, self.scope, asked=self.route.key)
        elif not tenant.allows_origin(self.origin):
            limit_hit(tenant.key, ORIGIN, self.scope)
            self.cors_allowed = False
            return None
        return tenant

    def cors(self) -> tuple[tuple[bytes, bytes], ...]:
        """The CORS headers for this request's answer."""
        return cors_headers(self.origin, self.cors_allowed)


Handler = Callable[["PeerJSHttp", Request], Awaitable[Response]]


class PeerJSHttp:
    """The HTTP side of one PeerServer process: its handlers and the POST rate state."""

    def __init__(self, cfg: ServerConfig) -> None:
        self.cfg = cfg
        self.rates = PostRates(cfg)
        self._banner = json_response(p.BANNER)

    def app_for(self, path: str) -> ASGIApp | None:
        """The application for ``path``, or None when the path is not a PeerJS one."""
        if not is_peerjs_path(path, self.cfg.path):
            return None
        route = match_route(path, self.cfg.path)

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            await self.serve(Request(scope, receive, route), send)

        return app

    async def serve(self, req: Request, send: Send) -> None:
        """Answer one request: preflight, method check, then the route's handler."""
        method = req.scope.get("method", "GET")
        name = req.route.name
        if method == "OPTIONS":
            response = preflight(req.origin, header(req.scope, b"access-control-request-headers"))
            await send_response(send, response)
            return
        allowed = allowed_methods(name)
        if name is RouteName.NOT_FOUND:
            response = text(404, "Not Found")
        elif method not in allowed:
            response = text(405, "Method Not Allowed").with_headers(
                ((b"allow", ", ".join(allowed).encode()),))
        elif name is RouteName.STREAM:
            await self.stream(req, send)
            return
        else:
            response = await self._answer(req)
        await send_response(send, response.with_headers(req.cors()), method == "HEAD")

    async def _answer(self, req: Request) -> Response:
        handler = _HANDLERS[req.route.name]
        try:
            return await handler(self, req)
        except BodyTooLarge:
            limit_hit(req.route.key, "body size", req.scope)
            return text(413, p.Errors.TOO_BIG).with_headers(((b"connection", b"close"),))
        except UNAVAILABLE as exc:
            logger.error("HTTP %s refused: cluster or database unreachable (%s)",
                         req.route.name, exc)
            return text(503, p.Errors.CLUSTER_UNAVAILABLE)

    # --- routes -----------------------------------------------------------------------

    async def banner(self, req: Request) -> Response:
        """``GET {path}``: the server banner, as peerjs-server sends it."""
        return self._banner

    async def new_id(self, req: Request) -> Response:
        """``GET {key}/id``: a fresh id, not held in this process (UUIDs do not collide:
        no cluster look-up is spent on it, so the route stays cheap)."""
        if await req.tenant() is None:
            return text(401, UNAUTHORIZED)
        hub = get_hub()
        key = req.route.key
        return text(200, fresh_id(lambda c: hub.local(key, c) is not None), TEXT_HTML)

    async def peers(self, req: Request) -> Response:
        """``GET {key}/peers``: the key's peer ids when discovery is on, else 401."""
        tenant = await req.tenant()
        if tenant is None or not tenant.discovery:
            return text(401, UNAUTHORIZED)
        return json_response(await get_hub().peer_ids(tenant.key))

    async def ice(self, req: Request) -> Response:
        """``GET {key}/ice?id=PEER[&token=T]``: ``iceServers`` for that key and peer.

        A key that requires signed tokens also requires a valid ``token`` for the id.
        """
        tenant = await req.tenant()
        if tenant is None:
            return text(401, UNAUTHORIZED)
        peer_id = req.query("id")
        if peer_id and not p.is_acceptable_id(peer_id):
            return text(400, p.Errors.INVALID_ID)
        if _token_refused(tenant, peer_id, req.query("token")):
            return text(401, p.Errors.INVALID_TOKEN)
        return Response(200, orjson.dumps(ice_servers(tenant, peer_id, time.time())), JSON)

    async def signal(self, req: Request) -> Response:
        """``POST {key}/{id}/{token}/offer|candidate|answer|leave`` (0.3.x): relay the
        body's message with the URL's id as ``src``."""
        route = req.route
        tenant = await req.tenant()
        if tenant is None:
            return text(401, p.Errors.INVALID_KEY)
        try:
            body = await read_body(req.scope, req.receive, self.cfg.max_message_size)
        except ClientGone:
            return text(400, "Client went away")
        hub = get_hub()
        holder = await hub.holder_token(route.key, route.peer_id)
        if holder is None:
            await asyncio.sleep(RETRY_DELAY)
            holder = await hub.holder_token(route.key, route.peer_id)
        if holder is None or holder != route.token:
            return text(401, p.Errors.INVALID_TOKEN)
        if not self.rates.take(tenant, route.peer_id, route.token, time.monotonic()):
            limit_hit(tenant.key, "message rate", req.scope)
            return text(429, p.Errors.RATE_LIMIT)
        try:
            msg = p.parse_client_frame(body)
        except p.ProtocolError as exc:
            return text(400, str(exc))
        await hub.relay(Sender(hub, route.key, route.peer_id, route.token,
                               tenant.queue_limit), msg)
        return text(200, "OK")

    # --- the 0.3.x stream ---------------------------------------------------------------

    async def stream(self, req: Request, send: Send) -> None:
        """``POST {key}/{id}/{token}/id``: register the peer and stream its frames.

        Refusals of the request itself are HTTP statuses (401 key or token, 413, 503);
        refusals of the claim are in-band, as on a websocket: the padding, then the
        ``ID-TAKEN`` or ``ERROR`` line, then the end of the stream.
        """
        response, endpoint = await self._open_stream(req)
        if endpoint is None:
            assert response is not None
            await send_response(send, response.with_headers(req.cors()))
            return
        ip = client_ip(req.scope)
        hub = get_hub()
        headers = [(b"content-type", OCTET_STREAM), *req.cors()]
        session = SessionInfo(api_key=endpoint.key, peer_id=endpoint.peer_id,
                              transport="xhr-stream", remote_addr=ip,
                              user_agent=header(req.scope, b"user-agent") or "")
        try:
            get_recorder().opened(session)
            await run_stream(endpoint, req.receive, send, headers,
                             lambda: hub.unregister(endpoint))
        finally:
            session.messages_out = endpoint.frames
            get_recorder().closed(session, endpoint.end_reason or "server stopped")
            get_ip_guard().release(ip)
            try:
                await hub.unregister(endpoint)
            except UNAVAILABLE as exc:
                logger.warning("could not free a 0.3.x stream's id (%s)", exc)

    async def _open_stream(self, req: Request) -> tuple[Response | None,
                                                        StreamEndpoint | None]:
        """The stream's endpoint, admitted and claimed; or the response refusing it."""
        try:
            refused = await self._refuse_stream(req)
        except BodyTooLarge:
            limit_hit(req.route.key, "body size", req.scope)
            return text(413, p.Errors.TOO_BIG).with_headers(((b"connection", b"close"),)), None
        except ClientGone:
            return text(400, "Client went away"), None
        except UNAVAILABLE as exc:
            logger.error("0.3.x stream refused: cluster or database unreachable (%s)", exc)
            return text(503, p.Errors.CLUSTER_UNAVAILABLE), None
        if isinstance(refused, Response):
            return refused, None
        ip = client_ip(req.scope)
        guard = get_ip_guard()
        why = guard.admit(ip, time.monotonic())
        if why is not None:
            limit_hit("", "per-address", ip)
            return _in_band(p.error_frame(why)), None
        try:
            outcome = await self._claim(req, refused)
        except UNAVAILABLE as exc:
            guard.release(ip)
            logger.error("0.3.x stream refused: the cluster directory is unreachable (%s)",
                         exc)
            return text(503, p.Errors.CLUSTER_UNAVAILABLE), None
        if isinstance(outcome, Response):
            guard.release(ip)
            return outcome, None
        return None, outcome

    async def _refuse_stream(self, req: Request) -> Response | Tenant:
        """The request-level checks of a stream: key, signed token, body, existing id."""
        route = req.route
        tenant = await req.tenant()
        if tenant is None:
            return text(401, p.Errors.INVALID_KEY)
        if not p.is_acceptable_id(route.peer_id):
            return text(400, p.Errors.INVALID_ID)
        if _token_refused(tenant, route.peer_id, route.token):
            return text(401, p.Errors.INVALID_TOKEN)
        await read_body(req.scope, req.receive, self.cfg.max_message_size)
        holder = await get_hub().holder_token(route.key, route.peer_id)
        if holder == route.token:
            # Its websocket got there first (or an earlier stream): nothing to add.
            return Response(204, b"", None)
        if holder is not None:
            return _in_band(p.ID_TAKEN_FRAME)
        return tenant

    async def _claim(self, req: Request, tenant: Tenant) -> Response | StreamEndpoint:
        """Claim the id for a new stream endpoint; act on the hub's answer."""
        route = req.route
        endpoint = StreamEndpoint(route.key, route.peer_id, route.token,
                                  settings.PEERHUB_SEND_BUFFER_LIMIT, tenant.queue_limit)
        hub = get_hub()
        claim = await hub.register(endpoint, Limits(self.cfg.concurrent_limit,
                                                    tenant.concurrent_limit))
        if claim is Claim.TAKEN:
            return _in_band(p.ID_TAKEN_FRAME)
        if claim is Claim.LIMIT:
            limit_hit(tenant.key, "concurrent", req.scope)
            return _in_band(p.error_frame(p.Errors.CONNECTION_LIMIT_EXCEED))
        ensure_key_watcher()
        if claim is Claim.NEW:
            endpoint.push(p.OPEN_FRAME)
        await hub.flush_queue(endpoint)
        return endpoint


def _in_band(frame: str) -> Response:
    """A stream that carries only ``frame`` after the padding, then ends."""
    return Response(200, (p.STREAM_PADDING + frame + "\n").encode(), OCTET_STREAM)


def _token_refused(tenant: Tenant, peer_id: str, token: str) -> bool:
    return not tenant.accepts_token(peer_id, token, time.time())


_HANDLERS: dict[RouteName, Handler] = {
    RouteName.BANNER: PeerJSHttp.banner,
    RouteName.NEW_ID: PeerJSHttp.new_id,
    RouteName.PEERS: PeerJSHttp.peers,
    RouteName.ICE: PeerJSHttp.ice,
    RouteName.SIGNAL: PeerJSHttp.signal,
}


@cache
def get_http_api() -> PeerJSHttp:
    """The HTTP side of this process (created on first use from the configuration)."""
    return PeerJSHttp(get_config())


def peerjs_http_app(path: str) -> ASGIApp | None:
    """The ASGI app (HTTP scope) serving a PeerJS route under PEERHUB_PATH, or None."""
    return get_http_api().app_for(path)
