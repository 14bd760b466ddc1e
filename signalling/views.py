"""The PeerServer's HTTP routes, under the mount path (``PEERHUB_PATH``)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator

import orjson
from django.conf import settings
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from apikeys.tenants import Tenant, get_tenant
from signalling import protocol as p
from signalling.config import get_config
from signalling.decisions import Claim
from signalling.hub import Limits
from signalling.legacy import Sender, StreamEndpoint
from signalling.runtime import get_hub
from signalling.tokens import turn_credentials

logger = logging.getLogger(__name__)

TEXT_HTML = "text/html; charset=utf-8"
JSON = "application/json; charset=utf-8"
UNAUTHORIZED = "Unauthorized"
_RETRY_DELAY = 0.025


def _json(data: object, status: int = 200) -> HttpResponse:
    return HttpResponse(orjson.dumps(data), content_type=JSON, status=status)


async def _tenant_for(request: HttpRequest, key: str) -> Tenant | None:
    """The key's tenant if it is active and the request's origin is allowed for it."""
    tenant = await get_tenant(key)
    if tenant is not None and not tenant.allows_origin(request.headers.get("Origin")):
        request.peerhub_cors = False  # type: ignore[attr-defined]
        return None
    return tenant


@require_GET
async def banner(request: HttpRequest) -> HttpResponse:
    """``GET {path}``: the server banner, as peerjs-server sends it."""
    return _json(p.BANNER)


def fresh_id(taken: set[str] | None = None) -> str:
    """A new UUID v4 id (it passes the PeerJS id rule), not in ``taken``."""
    while True:
        candidate = str(uuid.uuid4())
        if not taken or candidate not in taken:
            return candidate


@require_GET
async def new_id(request: HttpRequest, key: str) -> HttpResponse:
    """``GET {path}{key}/id``: a fresh id as plain text with no newline."""
    if await _tenant_for(request, key) is None:
        return HttpResponse(UNAUTHORIZED, content_type="text/plain", status=401)
    hub = get_hub()
    peer_id = fresh_id()
    while await hub.holder_token(key, peer_id) is not None:
        peer_id = fresh_id()
    return HttpResponse(peer_id, content_type=TEXT_HTML)


@require_GET
async def peers(request: HttpRequest, key: str) -> HttpResponse:
    """``GET {path}{key}/peers``: the key's peer ids when discovery is on, else 401."""
    tenant = await _tenant_for(request, key)
    if tenant is None or not tenant.discovery:
        return HttpResponse(UNAUTHORIZED, content_type="text/plain", status=401)
    return _json(await get_hub().peer_ids(key))


@require_GET
async def ice_servers(request: HttpRequest, key: str) -> HttpResponse:
    """``GET {path}{key}/ice?id=PEER[&token=T]``: ``iceServers`` for that key and peer.

    The key's STUN servers, plus short-lived TURN credentials (coturn REST API) when
    TURN_URLS and TURN_SECRET are configured. A key that requires signed tokens also
    requires a valid ``token`` for the ``id`` here.
    """
    tenant = await _tenant_for(request, key)
    if tenant is None:
        return HttpResponse(UNAUTHORIZED, content_type="text/plain", status=401)
    peer_id = request.GET.get("id", "")
    if peer_id and not p.is_acceptable_id(peer_id):
        return HttpResponse(p.Errors.INVALID_ID, content_type="text/plain", status=400)
    if await _token_refused(tenant, peer_id, request.GET.get("token", "")):
        return HttpResponse(p.Errors.INVALID_TOKEN, content_type="text/plain", status=401)
    servers: list[dict[str, object]] = []
    if tenant.stun_urls:
        servers.append({"urls": list(tenant.stun_urls)})
    if settings.PEERHUB_TURN_URLS and settings.PEERHUB_TURN_SECRET and peer_id:
        ttl = settings.PEERHUB_TURN_TTL
        username, credential = turn_credentials(settings.PEERHUB_TURN_SECRET, peer_id,
                                                int(time.time()) + ttl)
        servers.append({"urls": settings.PEERHUB_TURN_URLS, "username": username,
                        "credential": credential})
    return _json({"iceServers": servers, "ttl": settings.PEERHUB_TURN_TTL})


async def _token_refused(tenant: Tenant, peer_id: str, token: str) -> bool:
    return not tenant.accepts_token(peer_id, token, time.time())


@csrf_exempt
@require_POST
async def legacy_signal(request: HttpRequest, key: str, peer_id: str, token: str,
                        action: str) -> HttpResponse:
    """``POST {path}{key}/{id}/{token}/offer|candidate|answer|leave`` (0.3.x)."""
    if await _tenant_for(request, key) is None:
        return HttpResponse(p.Errors.INVALID_KEY, content_type="text/plain", status=401)
    hub = get_hub()
    holder = await hub.holder_token(key, peer_id)
    if holder is None:
        await asyncio.sleep(_RETRY_DELAY)
        holder = await hub.holder_token(key, peer_id)
    if holder is None or holder != token:
        return HttpResponse(p.Errors.INVALID_TOKEN, content_type="text/plain", status=401)
    try:
        msg = p.parse_client_frame(request.body)
    except p.ProtocolError as exc:
        return HttpResponse(str(exc), content_type="text/plain", status=400)
    await hub.relay(Sender(hub, key, peer_id, token), msg)
    return HttpResponse("OK", content_type="text/plain")


@csrf_exempt
@require_POST
async def legacy_stream(request: HttpRequest, key: str, peer_id: str,
                        token: str) -> HttpResponseBase:
    """``POST {path}{key}/{id}/{token}/id``: the 0.3.x XHR stream of server frames."""
    tenant = await _tenant_for(request, key)
    if tenant is None:
        return HttpResponse(p.Errors.INVALID_KEY, content_type="text/plain", status=401)
    if not p.is_acceptable_id(peer_id):
        return HttpResponse(p.Errors.INVALID_ID, content_type="text/plain", status=400)
    if await _token_refused(tenant, peer_id, token):
        return HttpResponse(p.Errors.INVALID_TOKEN, content_type="text/plain", status=401)
    hub = get_hub()
    holder = await hub.holder_token(key, peer_id)
    if holder is not None:
        # The websocket got there first (or another stream): nothing to add.
        if holder != token:
            return HttpResponse(p.Errors.ID_TAKEN, content_type="text/plain", status=401)
        return HttpResponse("", content_type="text/plain", status=204)
    endpoint = StreamEndpoint(key, peer_id, token)
    claim = await hub.register(endpoint, Limits(get_config().concurrent_limit,
                                                tenant.concurrent_limit))
    if claim is Claim.LIMIT:
        return HttpResponse(p.Errors.CONNECTION_LIMIT_EXCEED, content_type="text/plain",
                            status=503)
    await endpoint.deliver(p.OPEN_FRAME)
    await hub.flush_queue(endpoint)
    return StreamingHttpResponse(_stream(endpoint), content_type="application/octet-stream")


async def _stream(endpoint: StreamEndpoint) -> AsyncIterator[str]:
    hub = get_hub()
    try:
        yield p.STREAM_PADDING
        while (frame := await endpoint.frames.get()) is not None:
            yield frame + "\n"
            if not hub.is_current(endpoint):
                return
    finally:
        await hub.unregister(endpoint)
