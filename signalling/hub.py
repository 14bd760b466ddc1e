"""The hub: who is connected, relaying between them, and the offline queue.

Consumers (websocket or 0.3.x HTTP stream) talk only to a hub. :class:`LocalHub` keeps
everything in this process (the embedded default). Same-process delivery is a direct
call on the destination endpoint; nothing on the relay path touches the database.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

from signalling.decisions import Claim, Route, decide_claim, decide_route
from signalling.errors import NodeDraining
from signalling.looptasks import runs_on_a_running_loop
from signalling.metrics import limit_hit
from signalling.offline import OfflineQueue, QueueFull, SenderQueueFull
from signalling.protocol import ClientMessage, Errors, error_frame, expire_frame, relay_message

logger = logging.getLogger(__name__)

PeerKey = tuple[str, str]


class Endpoint(Protocol):
    """One client transport registered (or registering) as a peer id under a key."""

    key: str
    peer_id: str
    token: str
    queue_limit: int  # offline-queue bound for this peer's key; 0: the server's

    async def deliver(self, frame: str) -> None:
        """Send one server frame to this client."""

    async def shut(self, frame: str | None, code: int, reason: str = "") -> None:
        """Send ``frame`` (if any), then close with ``code``; ``reason`` is recorded."""


@dataclass(frozen=True, slots=True)
class Limits:
    """The registration limits that apply to one key."""

    server_limit: int
    key_limit: int  # 0: no per-key limit


class LocalHub:
    """Peer directory, relay and offline queue for one process."""

    def __init__(self, queue_limit: int, expire_timeout: float, cleanup_interval: float,
                 sender_queue_limit: int = 0):
        self._peers: dict[PeerKey, Endpoint] = {}
        self._per_key: Counter[str] = Counter()
        self._queue = OfflineQueue(queue_limit, expire_timeout, sender_queue_limit)
        self._cleanup_interval = cleanup_interval
        self._sweeper: asyncio.Task[None] | None = None
        self.accepting = True  # False while the node drains

    # --- registration ---------------------------------------------------------------

    async def register(self, ep: Endpoint, limits: Limits) -> Claim:
        """Claim ``ep.peer_id`` under ``ep.key``; on success deliver its queued messages."""
        self._ensure_sweeper()
        if not self.accepting:
            raise NodeDraining("this node is draining")
        pk = (ep.key, ep.peer_id)
        holder = self._peers.get(pk)
        claim = decide_claim(None if holder is None else holder.token, ep.token,
                             self._at_limit(ep.key, limits))
        if claim in (Claim.NEW, Claim.TAKEOVER):
            self._add_local(ep)
        return claim

    def _add_local(self, ep: Endpoint) -> None:
        pk = (ep.key, ep.peer_id)
        if pk not in self._peers:
            self._per_key[ep.key] += 1
        self._peers[pk] = ep

    def _remove_local(self, ep: Endpoint) -> bool:
        """Forget ``ep`` if it holds its id here; tell whether it did."""
        pk = (ep.key, ep.peer_id)
        if self._peers.get(pk) is not ep:
            return False
        del self._peers[pk]
        self._per_key[ep.key] -= 1
        if self._per_key[ep.key] <= 0:
            del self._per_key[ep.key]
        return True

    async def flush_queue(self, ep: Endpoint) -> None:
        """Deliver what was queued for ``ep`` while it was offline."""
        for frame in self._queue.drain(ep.key, ep.peer_id):
            await ep.deliver(frame)

    async def unregister(self, ep: Endpoint) -> bool:
        """Free ``ep``'s id if ``ep`` is still the one holding it."""
        return self._remove_local(ep)

    def _at_limit(self, key: str, limits: Limits) -> bool:
        if len(self._peers) >= limits.server_limit:
            return True
        return limits.key_limit > 0 and self._per_key[key] >= limits.key_limit

    # --- lookups --------------------------------------------------------------------

    def is_current(self, ep: Endpoint) -> bool:
        """Tell whether ``ep`` is the endpoint that holds its id now."""
        return self._peers.get((ep.key, ep.peer_id)) is ep

    def local(self, key: str, peer_id: str) -> Endpoint | None:
        """The endpoint in this process holding ``peer_id`` under ``key``, if any."""
        return self._peers.get((key, peer_id))

    async def holder_token(self, key: str, peer_id: str) -> str | None:
        """The token that holds ``peer_id`` under ``key`` anywhere, or None."""
        ep = self._peers.get((key, peer_id))
        return None if ep is None else ep.token

    async def peer_ids(self, key: str) -> list[str]:
        """Every registered id under ``key``."""
        return [pid for (k, pid) in self._peers if k == key]

    async def send_to(self, key: str, peer_id: str, frame: str) -> None:
        """Deliver a server frame to ``peer_id`` wherever it is; never queued."""
        ep = self._peers.get((key, peer_id))
        if ep is not None:
            await ep.deliver(frame)

    def endpoints(self) -> list[Endpoint]:
        """Every endpoint registered here, oldest first."""
        return list(self._peers.values())

    def count(self, key: str | None = None) -> int:
        """Registered peers under ``key``, or in all keys."""
        return len(self._peers) if key is None else self._per_key.get(key, 0)

    def keys_online(self) -> dict[str, int]:
        """Live peer count for every key that has any."""
        return dict(self._per_key)

    def local_keys_online(self) -> dict[str, int]:
        """Live peer count per key in this process only."""
        return dict(self._per_key)

    def local_endpoints(self) -> list[Endpoint]:
        """The endpoints registered in this process (a copy; read by /metrics)."""
        return list(self._peers.values())

    def queue_depth(self) -> int:
        """Messages this process holds for peers that are offline (read by /metrics)."""
        return self._queue.queued()

    # --- relay ----------------------------------------------------------------------

    async def relay(self, src: Endpoint, msg: ClientMessage) -> None:
        """Route one client message from ``src`` (its ``src`` stamp is ``src.peer_id``)."""
        target = None if msg.dst is None else self._peers.get((src.key, msg.dst))
        route = decide_route(msg.type, msg.dst, target is not None)
        if route is Route.DELIVER:
            assert target is not None
            await target.deliver(relay_message(msg, src.peer_id))
        elif route is Route.QUEUE:
            assert msg.dst is not None
            await self._enqueue(src, msg.dst, relay_message(msg, src.peer_id))
        elif route is Route.UNREGISTER:
            await self.unregister(src)

    async def _enqueue(self, src: Endpoint, dst: str, frame: str) -> None:
        try:
            self._queue.push(src.key, dst, src.peer_id, frame, time.monotonic(),
                             src.queue_limit)
        except QueueFull:
            logger.debug("an offline queue is full; EXPIRE to its sender")
            await src.deliver(expire_frame(dst, src.peer_id))
        except SenderQueueFull:
            await self.refuse_sender(src)

    async def refuse_sender(self, src: Endpoint) -> None:
        """Close a sender that has too many messages waiting for offline peers."""
        limit_hit(src.key, "sender queue", "peer")
        await src.shut(error_frame(Errors.SENDER_QUEUE_FULL), 1008, "sender queue limit")

    # --- expiry ---------------------------------------------------------------------

    def _ensure_sweeper(self) -> None:
        if runs_on_a_running_loop(self._sweeper):
            return
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever(),
                                                               name="peerhub-expiry")

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._cleanup_interval)
            await self.expire_now(time.monotonic())

    async def expire_now(self, now: float) -> None:
        """Drop timed-out queues and send each waiting sender one EXPIRE."""
        for item in self._queue.expire(now):
            for sender in item.senders:
                ep = self._peers.get((item.key, sender))
                if ep is not None:
                    await ep.deliver(expire_frame(item.dst, sender))

    async def disconnect_key(self, key: str, frame: str | None, code: int,
                             reason: str) -> int:
        """Close every endpoint registered under ``key``; return how many."""
        victims = [ep for (k, _), ep in self._peers.items() if k == key]
        for ep in victims:
            await ep.shut(frame, code, reason)
        return len(victims)

    async def close_all(self, frame: str | None, code: int, reason: str) -> None:
        """Close every registered endpoint (used at shutdown)."""
        for ep in list(self._peers.values()):
            await ep.shut(frame, code, reason)

    async def stop(self) -> None:
        """Stop admitting and end the background tasks (after the peers are closed)."""
        self.accepting = False
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
