"""The PeerJS websocket endpoint, ``{path}peerjs``.

A lean consumer: it is routed by Channels as usual but runs its own receive loop for
websocket frames instead of the generic per-message dispatch (design.md measured the
generic dispatch as the main cost). Decisions live in :mod:`signalling.decisions`,
state in the hub; this module only moves frames.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from channels.consumer import AsyncConsumer
from django.db import DatabaseError

from apikeys.tenants import Tenant
from signalling import protocol as p
from signalling.config import ServerConfig, get_config
from signalling.decisions import Claim
from signalling.errors import ClusterUnavailable, NodeDraining
from signalling.hub import Limits
from signalling.metrics import INVALID_KEY, ORIGIN, client_address, limit_hit
from signalling.node import Node, get_node
from signalling.ratelimit import SHARED_BUCKET, TokenBucket
from signalling.runtime import get_hub
from signalling.sessions import SessionInfo

logger = logging.getLogger(__name__)

CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_GOING_AWAY = 1001
CLOSE_INTERNAL = 1011

Scope = dict[str, Any]


def header(scope: Scope, name: bytes) -> str | None:
    """One request header from an ASGI scope, decoded, or None."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


class PeerConsumer(AsyncConsumer):
    """One PeerJS client's websocket: handshake, then relay until it closes."""

    # Slots: one of these lives for every connected peer.
    __slots__ = ("scope", "_send", "_closed", "close_reason", "session", "cfg", "key",
                 "peer_id", "token", "client_version", "queue_limit", "_bucket")

    key: str
    peer_id: str
    token: str
    queue_limit: int

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        self.queue_limit = 0
        self.scope = scope
        self._send = send
        self._closed = False
        self.close_reason = "closed by client"
        self.session: SessionInfo | None = None
        self.cfg: ServerConfig = get_config()
        first = await receive()
        if first["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        ip = str((scope.get("client") or ("",))[0])
        node = get_node()
        node.ensure_started()
        if node.bans.is_banned(ip, time.time()):
            limit_hit("", "banned address", ip)
            await self.shut(p.error_frame(p.Errors.BANNED), CLOSE_POLICY, "address banned")
            return
        guard = node.ip_guard
        refused = guard.admit(ip, time.monotonic())
        if refused is not None:
            limit_hit("", "per-address", ip)
            await self.shut(p.error_frame(refused), CLOSE_POLICY)
            return
        try:
            if not await self._handshake(node):
                return
            # Served here rather than in a method of its own: each coroutine frame in
            # this chain stays alive for as long as the peer is connected.
            try:
                await self._receive_loop(receive)
            except asyncio.CancelledError:
                self.close_reason = "server stopped"
                raise
            finally:
                await node.hub.unregister(self)
                if self.session is not None:
                    node.recorder.closed(self.session, self.close_reason)
        finally:
            guard.release(ip)

    # --- Endpoint -------------------------------------------------------------------

    async def deliver(self, frame: str) -> None:
        """Send one server frame; a closed socket swallows it."""
        if not self._closed:
            if self.session is not None:
                self.session.messages_out += 1
            await self._send({"type": "websocket.send", "text": frame})

    async def shut(self, frame: str | None, code: int, reason: str = "") -> None:
        """Send ``frame`` if given, then close with ``code`` (``reason`` is recorded)."""
        if self._closed:
            return
        self.close_reason = reason or self.close_reason
        if frame is not None:
            await self._send({"type": "websocket.send", "text": frame})
        self._closed = True
        await self._send({"type": "websocket.close", "code": code})

    # --- handshake ------------------------------------------------------------------

    async def _handshake(self, node: Node) -> bool:
        # The node is passed down, not looked up: each get_hub()/get_recorder()/
        # get_tenant() is get_node() plus an import statement, several per socket.
        params = p.parse_handshake(self.scope.get("query_string", b""))
        if params is None:
            await self.shut(p.error_frame(p.Errors.INVALID_WS_PARAMETERS), CLOSE_POLICY)
            return False
        self.key, self.peer_id, self.token = params.key, params.id, params.token
        self.client_version = params.version or ""
        if not p.is_acceptable_id(params.id):
            logger.info("refused a client: key=%r reason='invalid id' address=%s (id %r)",
                        params.key[:64], client_address(self.scope), params.id[:80],
                        extra={"api_key": params.key[:64], "reason": "invalid id",
                               "address": client_address(self.scope)})
            await self.shut(p.error_frame(p.Errors.INVALID_ID), CLOSE_POLICY, "invalid id")
            return False
        try:
            tenant = await node.tenants.get(params.key)
        except DatabaseError:
            logger.error("refused a peer: the database is unreachable")
            await self.shut(p.error_frame(p.Errors.CLUSTER_UNAVAILABLE), CLOSE_INTERNAL)
            return False
        if tenant is None:
            # Not counted under the key asked for: any string can be asked for.
            limit_hit("", INVALID_KEY, self.scope, asked=params.key)
            await self.shut(p.INVALID_KEY_FRAME, CLOSE_POLICY)
            return False
        if not tenant.accepts_token(self.peer_id, self.token, time.time()):
            limit_hit(tenant.key, "signed token", self.scope)
            await self.shut(p.error_frame(p.Errors.INVALID_TOKEN), CLOSE_POLICY)
            return False
        if not tenant.allows_origin(header(self.scope, b"origin")):
            limit_hit(tenant.key, ORIGIN, self.scope)
            await self.shut(p.error_frame(p.Errors.ORIGIN_NOT_ALLOWED), CLOSE_POLICY)
            return False
        return await self._claim(tenant, node)

    async def _claim(self, tenant: Tenant, node: Node) -> bool:
        hub = node.hub
        try:
            claim = await hub.register(self, Limits(self.cfg.concurrent_limit,
                                                    tenant.concurrent_limit))
        except NodeDraining:
            await self.shut(p.error_frame(p.Errors.CLUSTER_UNAVAILABLE), CLOSE_GOING_AWAY,
                            "server draining")
            return False
        except ClusterUnavailable:
            logger.error("refused a client: key=%r reason='cluster unavailable' address=%s",
                         tenant.key, client_address(self.scope),
                         extra={"api_key": tenant.key, "reason": "cluster unavailable",
                                "address": client_address(self.scope)})
            await self.shut(p.error_frame(p.Errors.CLUSTER_UNAVAILABLE), CLOSE_INTERNAL)
            return False
        if claim is Claim.TAKEN:
            await self.shut(p.ID_TAKEN_FRAME, CLOSE_POLICY)
            return False
        if claim is Claim.LIMIT:
            limit_hit(tenant.key, "concurrent", self.scope)
            await self.shut(p.error_frame(p.Errors.CONNECTION_LIMIT_EXCEED), CLOSE_POLICY)
            return False
        self.queue_limit = tenant.queue_limit
        rate, burst = tenant.message_rate(self.cfg.rate_limit, self.cfg.rate_burst)
        self._bucket = TokenBucket(rate, burst, time.monotonic())
        if SHARED_BUCKET in (self.scope.get("extensions") or ()):
            # the edge charges this peer's pongs and fragments to the same bucket
            await self._send({"type": SHARED_BUCKET, "bucket": self._bucket})
        self._start_session(tenant, node)
        node.ensure_key_watcher()
        if claim is Claim.NEW:
            await self.deliver(p.OPEN_FRAME)
        await hub.flush_queue(self)
        return True

    def _start_session(self, tenant: Tenant, node: Node) -> None:
        client = self.scope.get("client") or ("", 0)
        self.session = SessionInfo(
            api_key=tenant.key, peer_id=self.peer_id, transport="websocket",
            remote_addr=str(client[0]), user_agent=header(self.scope, b"user-agent") or "",
            client_version=self.client_version)
        node.recorder.opened(self.session)

    # --- the hot loop ---------------------------------------------------------------

    async def _receive_loop(self, receive: Any) -> None:
        hub = get_hub()
        limit = self.cfg.max_message_size
        bucket = self._bucket
        session = self.session
        assert session is not None
        by_type = session.by_type
        relayed = p.RELAYED_TYPES
        event: Any = None
        data: Any = None
        msg: p.ClientMessage | None = None
        while True:
            # Nothing of the last frame stays referenced while this peer is idle
            # (a heartbeat's event and text are about 170 bytes per peer).
            event = data = msg = None
            event = await receive()
            if event["type"] != "websocket.receive":
                return  # websocket.disconnect
            data = event.get("text")
            if data is None:
                data = event.get("bytes") or b""
            session.messages_in += 1
            if len(data) > limit:
                limit_hit(self.key, "message size", self.scope)
                await self.shut(p.error_frame(p.Errors.TOO_BIG), CLOSE_TOO_BIG, "message too big")
                return await self._drain(receive)
            if not bucket.take(time.monotonic()):
                limit_hit(self.key, "message rate", self.scope)
                await self.shut(p.error_frame(p.Errors.RATE_LIMIT), CLOSE_POLICY, "rate limit")
                return await self._drain(receive)
            if data == p.HEARTBEAT_FRAME:
                session.heartbeats += 1
                continue  # liveness only (every frame counts); the most common frame
            try:
                msg = p.parse_client_frame(data)
            except p.ProtocolError as exc:
                by_type["invalid"] = by_type.get("invalid", 0) + 1
                await self.deliver(p.error_frame(str(exc)))
                continue
            if msg.type in relayed:  # bounded by type: read by /metrics
                by_type[msg.type] = by_type.get(msg.type, 0) + 1
            elif msg.type == p.MessageType.HEARTBEAT:  # spaced or reordered JSON
                session.heartbeats += 1
            else:
                by_type["other"] = by_type.get("other", 0) + 1
            if not hub.is_current(self):
                # The id was freed (LEAVE) or taken over since: this socket no longer
                # speaks for it.
                await self.shut(p.error_frame(p.Errors.ID_NOT_HELD), CLOSE_POLICY,
                                "id no longer held")
                return await self._drain(receive)
            await hub.relay(self, msg)

    async def _drain(self, receive: Any) -> None:
        """After closing, wait for the disconnect so the id is freed at the right time."""
        try:
            async with asyncio.timeout(5):
                while (await receive())["type"] != "websocket.disconnect":
                    pass
        except TimeoutError:
            return
