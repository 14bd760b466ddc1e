"""The hub: who is connected, relaying between them, and the offline queue.

Consumers (websocket or 0.3.x HTTP stream) talk only to a :class:`Hub`. One class serves
the embedded single node and the cluster alike; what differs is its three parts, each
behind a small protocol with an in-memory implementation (``signalling.hub_memory``)
and a Redis one (``signalling.redis_directory``, ``signalling.redis_queue``,
``signalling.cluster``):

- the :class:`Directory`: who holds which id, with which token, on which node;
- the :class:`OfflineStore`: messages kept for destinations that are offline;
- the :class:`NodeBus`: frames to peers on other nodes, this node's inbound, presence.

The hub keeps this process's endpoints itself: delivery to a peer of this process is a
direct call on its endpoint, with nothing on the way. Every other route (relay,
``send_to``, a message arriving for a peer that left, an EXPIRE) is decided here, once,
by the pure functions of :mod:`signalling.decisions`. Where the destination may be on
another node, the message goes to an outbox that one task flushes in batches: each
flush hands every destination's frames to the bus in one call, which looks them up and
forwards those another node holds in the same step (one Redis round trip).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple, Protocol

import orjson

from signalling.cancellation import raise_if_cancelled
from signalling.decisions import (
    Claim,
    Route,
    Where,
    decide_claim,
    decide_handover,
    decide_route,
    needs_lookup,
)
from signalling.errors import ClusterUnavailable, NodeDraining
from signalling.looptasks import Running, runs_on_a_running_loop
from signalling.metrics import limit_hit
from signalling.offline import Expired
from signalling.protocol import (
    ID_TAKEN_FRAME,
    ClientMessage,
    Errors,
    error_frame,
    expire_frame,
    relay_message,
)

logger = logging.getLogger(__name__)

PeerKey = tuple[str, str]  # (api key, peer id)

_SUBSCRIBE_WAIT = 5.0
_MAX_REROUTES = 50
ADMITTED = (Claim.NEW, Claim.TAKEOVER)


def tally(counts: dict[str, int], key: str, delta: int) -> None:
    """Add ``delta`` to ``counts[key]``; a count that reaches zero is dropped."""
    n = counts.get(key, 0) + delta
    if n > 0:
        counts[key] = n
    else:
        counts.pop(key, None)


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


class Seen(NamedTuple):
    """What a directory claim found, for :func:`decide_claim`."""

    held: bool          # someone held the id
    token: str          # the holder's token ("" when not held)
    at_limit: bool      # the node or the key was full (only looked at when not held)
    node: str           # the node that held it ("" when not held)
    #: False when the claim also saw that nothing waits in the offline queue for this
    #: id, so no drain need follow (an admitted id's queue gains nothing afterwards:
    #: queueing checks the lease). True when there may be, or the directory cannot tell.
    queued: bool = True

    def claim(self, token: str) -> Claim:
        """The registration outcome for a peer asking with ``token``."""
        return decide_claim(self.token if self.held else None, token, self.at_limit)


class Enqueued(Enum):
    """What became of one message handed to the offline store."""

    QUEUED = "queued"
    FULL = "full"                # the destination's queue is full: EXPIRE to the sender
    SENDER_FULL = "sender full"  # the sender has too much queued: close it
    ONLINE = "online"            # the destination registered meanwhile: route it again


@dataclass(frozen=True, slots=True)
class Parcel:
    """One message for an offline destination."""

    key: str
    dst: str
    src: str
    frame: str
    limit: int     # the destination queue's bound (0: the store's default)
    local: bool    # the sender is a peer of this process (not a stand-in)


class Directory(Protocol):
    """Who holds which id: claims, releases, lookups, leases, counts."""

    #: True when other nodes register ids in it too (lookups may cost a round trip).
    shared: bool
    #: Seconds between lease renewals, or None when ids hold no lease.
    renew_every: float | None

    async def claim(self, ep: Endpoint, key_limit: int, node_full: bool) -> Seen:
        """Look at ``ep``'s id and take it exactly when ``Seen.claim(ep.token)`` admits;
        ``node_full``: this node takes no new id (a takeover is still allowed)."""

    async def release(self, ep: Endpoint) -> None:
        """Free ``ep``'s id if ``ep``'s token (on this node) still holds it."""

    async def holder(self, key: str, peer_id: str) -> str | None:
        """The token holding ``peer_id`` under ``key`` anywhere, or None."""

    async def peer_ids(self, key: str) -> list[str]:
        """Every id registered under ``key`` on any node."""

    def keys_online(self) -> dict[str, int]:
        """Live peer count per key on every node (synchronous, for the admin)."""

    async def renew(self, endpoints: list[Endpoint]) -> list[Endpoint]:
        """Renew the leases of ``endpoints``; return those another holder took."""

    async def close(self) -> None:
        """Release what the directory holds open (connections)."""


class OfflineStore(Protocol):
    """Messages waiting for destinations that have not registered yet."""

    async def put(self, parcels: list[Parcel]) -> list[Enqueued]:
        """Queue each parcel (bounded per destination and per sender)."""

    async def take(self, key: str, dst: str) -> list[str]:
        """Remove and return the frames waiting for ``dst``, oldest first."""

    async def expire(self, now: float) -> list[Expired]:
        """Remove timed-out queues; tell who is owed an EXPIRE."""

    def possibly_lost(self) -> list[tuple[str, str, str]]:
        """``(key, dst, sender)`` of local senders whose queued messages the store may
        have lost (after an outage); forgets them."""

    def depth(self) -> int:
        """Messages this process accounts for in the store (read by /metrics)."""

    async def close(self) -> None:
        """Release what the store holds open (connections)."""


class Frames(NamedTuple):
    """Frames for one destination, in order, as they cross from node to node."""

    key: str
    dst: str
    queueable: bool  # they may wait offline if ``dst`` is gone when they arrive
    frames: list[str]


class Handed(Enum):
    """What became of one destination's frames handed to the node bus."""

    FORWARDED = "forwarded"  # another node holds it, and heard its frames
    UNHEARD = "unheard"      # another node holds it, but nobody listens there (gone)
    HELD_HERE = "held here"  # this node holds its id: here if registered, else nowhere
    NOT_HELD = "not held"    # nobody holds its id


class BusListener(Protocol):
    """What a node bus hands its node (the hub)."""

    async def on_frames(self, key: str, dst: str, queueable: bool, frames: list[str]
                        ) -> None:
        """Frames another node sent for ``dst`` under ``key``, a peer of this node, in
        order (``queueable``: they may wait offline if it is gone)."""

    def on_moved(self, key: str, peer_id: str) -> None:
        """Another node took ``peer_id`` over with the same token."""

    async def on_restored(self) -> None:
        """The bus is back after an outage."""


class NodeBus(Protocol):
    """Frames to peers on other nodes, this node's inbound, and which nodes there are."""

    node_id: str
    #: True when other nodes may be on the bus.
    shared: bool

    @property
    def subscribed(self) -> bool:
        """True while this node receives its inbound."""

    def start(self, listener: BusListener) -> None:
        """Start receiving for ``listener`` and announcing this node (idempotent)."""

    async def wait_subscribed(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for :attr:`subscribed`; tell if it is."""

    async def hand_over(self, destinations: list[list[Frames]]) -> list[Handed]:
        """Send each destination's frames (its runs, in order) to the node that holds it
        at that instant: the look-up and the sending are one step, so frames never go
        to a node that no longer holds their destination. Tell, per destination, what
        became of them; frames not forwarded are the caller's to deliver, queue or drop."""

    async def moved(self, node: str, key: str, peer_id: str) -> None:
        """Tell ``node`` that this node took ``peer_id`` over (same token)."""

    async def ping(self) -> bool:
        """Tell whether the bus answers now."""

    async def stop(self) -> None:
        """Stop receiving and withdraw this node's presence (the connection stays open
        until the parts are closed)."""


@dataclass(slots=True)
class _Outgoing:
    sender: Endpoint
    key: str
    dst: str
    frame: str
    queueable: bool
    attempts: int = 0  # times it was routed again (its destination was moving)


#: An :class:`_Outgoing` as the outbox keeps it, under its destination's (key, dst):
#: (sender, frame, queueable, attempts). A tuple costs a tenth of the object on the
#: relay path (0.07 against 0.5 us); the object is made only where one is handled alone.
_Item = tuple[Endpoint, str, bool, int]
Outbox = dict[PeerKey, list[_Item]]


def _outgoing(pk: PeerKey, item: _Item) -> _Outgoing:
    return _Outgoing(item[0], pk[0], pk[1], item[1], item[2], item[3])


def _runs(items: list[_Item]) -> list[tuple[bool, list[_Item]]]:
    """``items`` cut into runs of the same ``queueable``, in order (usually one run)."""
    first = items[0][2]
    if all(it[2] is first for it in items):
        return [(first, items)]
    runs: list[tuple[bool, list[_Item]]] = []
    for it in items:
        if runs and runs[-1][0] == it[2]:
            runs[-1][1].append(it)
        else:
            runs.append((it[2], [it]))
    return runs


class Hub:
    """Peer directory, relay and offline queue of one node, made of three parts."""

    def __init__(self, directory: Directory, queue: OfflineStore, bus: NodeBus,
                 cleanup_interval: float) -> None:
        self.directory = directory
        self.queue = queue
        self.bus = bus
        self.node_id = bus.node_id
        self._shared = directory.shared or bus.shared
        self._peers: dict[PeerKey, Endpoint] = {}
        # Endpoints admitted by a claim that saw nothing queued for them: their
        # flush_queue has nothing to take (until it runs or they leave).
        self._unqueued: dict[PeerKey, Endpoint] = {}
        self._per_key: dict[str, int] = {}
        self._cleanup_interval = cleanup_interval
        # Messages for peers that are not here, per destination, until the next flush.
        self._outbox: Outbox = {}
        self._outbox_size = 0
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._running = Running()  # while it holds, start() is one check (per connection)
        self._stopping = False
        self.accepting = True  # False while the node drains

    @property
    def clustered(self) -> bool:
        """True when other nodes share this hub's peers."""
        return self._shared

    # --- background tasks -------------------------------------------------------------

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        """The background tasks :meth:`start` started (empty before, and once stopped)."""
        return self._tasks

    def start(self) -> None:
        """Start the background tasks on the running loop (idempotent; they also start
        on first use): the expiry sweep, lease renewal, the outbox flusher, the bus."""
        if self._stopping or self._running.holds():
            return
        if self._tasks and runs_on_a_running_loop(self._tasks[0]):
            self._running.watch(self._tasks)
            return
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        jobs: list[tuple[str, Awaitable[None]]] = [("peerhub-expiry", self._sweep_forever())]
        if self._shared:
            jobs.append(("peerhub-flush", self._flush_forever()))
        if self.directory.renew_every is not None:
            jobs.append(("peerhub-refresh", self._renew_forever(self.directory.renew_every)))
        self._tasks = [loop.create_task(job, name=name) for name, job in jobs]  # type: ignore[arg-type]
        self.bus.start(self)
        self._running.watch(self._tasks)

    async def stop(self) -> None:
        """Stop admitting; leave the bus (no more inbound, presence withdrawn); hand
        over what the outbox still holds; end the background tasks; close the parts.
        Called once the peers are closed."""
        self.accepting = False
        self._stopping = True
        await self.bus.stop()
        for _ in range(_MAX_REROUTES):  # a message routed again comes back to the outbox
            batch, self._outbox, self._outbox_size = self._outbox, {}, 0
            if not batch:
                break
            await self._flush(batch)
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.directory.close()
        await self.queue.close()

    @property
    def subscribed(self) -> bool:
        """True while this node receives frames from the other nodes."""
        return self.bus.subscribed

    async def wait_subscribed(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for this node's subscription; tell if it is."""
        return await self.bus.wait_subscribed(timeout)

    async def ping(self) -> bool:
        """Tell whether the node bus (Redis, in a cluster) answers now."""
        return await self.bus.ping()

    # --- registration -----------------------------------------------------------------

    async def register(self, ep: Endpoint, limits: Limits) -> Claim:
        """Claim ``ep.peer_id`` under ``ep.key`` (the server limit counts this node's
        peers); the caller then sends OPEN and calls :meth:`flush_queue`."""
        self.start()
        if not self.accepting:
            raise NodeDraining("this node is draining")
        # A peer registered here must be able to receive from other nodes at once.
        if not self.bus.subscribed and not await self.bus.wait_subscribed(_SUBSCRIBE_WAIT):
            raise ClusterUnavailable("not subscribed to this node's channel")
        seen = await self.directory.claim(ep, limits.key_limit,
                                          len(self._peers) >= limits.server_limit)
        claim = seen.claim(ep.token)
        if claim in ADMITTED:
            self._add_local(ep)
            if not seen.queued:
                self._unqueued[(ep.key, ep.peer_id)] = ep
            elif self._unqueued:  # (always empty on a single node: nothing to look up)
                self._unqueued.pop((ep.key, ep.peer_id), None)
            if claim is Claim.TAKEOVER and seen.node and seen.node != self.node_id:
                await self._tell_moved(seen.node, ep.key, ep.peer_id)
        return claim

    def _add_local(self, ep: Endpoint) -> None:
        pk = (ep.key, ep.peer_id)
        if pk not in self._peers:
            tally(self._per_key, ep.key, 1)
        self._peers[pk] = ep

    def _remove_local(self, ep: Endpoint) -> bool:
        """Forget ``ep`` if it holds its id here; tell whether it did."""
        pk = (ep.key, ep.peer_id)
        if self._peers.get(pk) is not ep:
            return False
        del self._peers[pk]
        if self._unqueued and self._unqueued.get(pk) is ep:
            del self._unqueued[pk]
        tally(self._per_key, ep.key, -1)
        return True

    async def flush_queue(self, ep: Endpoint) -> None:
        """Deliver what was queued for ``ep`` while it was offline (nothing to ask for
        when its claim saw its queue empty)."""
        if self._unqueued:
            pk = (ep.key, ep.peer_id)
            if self._unqueued.get(pk) is ep:
                del self._unqueued[pk]
                return
        try:
            frames = await self.queue.take(ep.key, ep.peer_id)
        except ClusterUnavailable as exc:
            logger.warning("could not read the offline queue (%s)", exc)
            return
        for frame in frames:
            await ep.deliver(frame)

    async def unregister(self, ep: Endpoint) -> bool:
        """Free ``ep``'s id if ``ep`` is still the one holding it."""
        if not self._remove_local(ep):
            return False
        await self.directory.release(ep)
        return True

    # --- lookups ----------------------------------------------------------------------

    def is_current(self, ep: Endpoint) -> bool:
        """Tell whether ``ep`` is the endpoint that holds its id now."""
        return self._peers.get((ep.key, ep.peer_id)) is ep

    def local(self, key: str, peer_id: str) -> Endpoint | None:
        """The endpoint in this process holding ``peer_id`` under ``key``, if any."""
        return self._peers.get((key, peer_id))

    async def holder_token(self, key: str, peer_id: str) -> str | None:
        """The token that holds ``peer_id`` under ``key`` anywhere, or None."""
        ep = self._peers.get((key, peer_id))
        if ep is not None:
            return ep.token
        return await self.directory.holder(key, peer_id)

    async def peer_ids(self, key: str) -> list[str]:
        """Every registered id under ``key``, on any node."""
        return await self.directory.peer_ids(key)

    def endpoints(self) -> list[Endpoint]:
        """Every endpoint registered here, oldest first (a copy)."""
        return list(self._peers.values())

    def count(self, key: str | None = None) -> int:
        """Peers registered in this process under ``key``, or in all keys."""
        return len(self._peers) if key is None else self._per_key.get(key, 0)

    def keys_online(self) -> dict[str, int]:
        """Live peer count for every key that has any, on every node."""
        return self.directory.keys_online()

    def local_keys_online(self) -> dict[str, int]:
        """Live peer count per key in this process only."""
        return dict(self._per_key)

    def queue_depth(self) -> int:
        """Messages this process holds or accounts for in the offline store, plus its
        unsent outbox (read by /metrics)."""
        return self.queue.depth() + self._outbox_size

    # --- relay ------------------------------------------------------------------------

    async def relay(self, src: Endpoint, msg: ClientMessage) -> None:
        """Route one client message from ``src`` (its ``src`` stamp is ``src.peer_id``)."""
        dst = msg.dst
        target = None if dst is None else self._peers.get((src.key, dst))
        route = decide_route(msg.type, dst, target is not None)
        if route is Route.DELIVER:
            assert target is not None
            await target.deliver(relay_message(msg, src.peer_id))
        elif route is Route.UNREGISTER:
            await self.unregister(src)
        elif dst is not None and needs_lookup(msg.type, dst):
            # Not here: perhaps on another node. QUEUE means it may wait offline.
            if self._shared:
                # Posted without start(): registering started the flusher.
                pk = (src.key, dst)
                waiting = self._outbox.get(pk)
                if waiting is None:
                    waiting = self._outbox[pk] = []
                waiting.append((src, relay_message(msg, src.peer_id), route is Route.QUEUE, 0))
                self._outbox_size += 1
                self._wake.set()
            elif route is Route.QUEUE:  # no other node: it waits here, queued at once
                await self._route([(src.key, dst)], [[(True, [
                    (src, relay_message(msg, src.peer_id), True, 0)])]], [Handed.NOT_HELD])

    async def send_to(self, key: str, peer_id: str, frame: str) -> None:
        """Deliver a server frame to ``peer_id`` wherever it is; never queued."""
        ep = self._peers.get((key, peer_id))
        if ep is not None:
            await ep.deliver(frame)
        elif self._shared:
            self._post(_Outgoing(_NOBODY, key, peer_id, frame, False))

    def _post(self, item: _Outgoing) -> None:
        """Hand a message for a destination that is not in this process to the outbox
        (a cluster node: the flusher looks destinations up in batches)."""
        self.start()  # (not once stopping: stop() flushes the outbox itself)
        self._outbox.setdefault((item.key, item.dst), []).append(
            (item.sender, item.frame, item.queueable, item.attempts))
        self._outbox_size += 1
        self._wake.set()

    async def _flush_forever(self) -> None:
        while True:
            raise_if_cancelled()  # a flush's Redis call can lose a stop (Python 3.11)
            await self._wake.wait()
            self._wake.clear()
            batch, self._outbox, self._outbox_size = self._outbox, {}, 0
            if batch:
                await self._flush(batch)

    async def _flush(self, batch: Outbox) -> None:
        """Hand every destination's messages to the bus in one call (it looks them up
        and forwards those another node holds), then route the rest."""
        order = list(batch)
        runs = [_runs(batch[pk]) for pk in order]
        try:
            handed = await self.bus.hand_over(
                [[Frames(pk[0], pk[1], queueable, [it[1] for it in run])
                  for queueable, run in pk_runs] for pk, pk_runs in zip(order, runs,
                                                                        strict=True)])
        except ClusterUnavailable as exc:
            logger.error("the cluster is unreachable while relaying messages for %d "
                         "destinations (%s); their senders get EXPIRE", len(batch), exc)
            await self._expire_senders([_outgoing(pk, it) for pk, items in batch.items()
                                        for it in items if it[2]])
            return
        await self._route(order, runs, handed)

    async def _route(self, order: list[PeerKey], runs: list[list[tuple[bool, list[_Item]]]],
                     handed: list[Handed]) -> None:
        """Deliver, queue or drop (``decide_handover``) each destination's messages that
        the bus did not forward; EXPIRE to the senders of those forwarded to no one."""
        offline: list[_Outgoing] = []
        failed: list[_Outgoing] = []
        for pk, pk_runs, outcome in zip(order, runs, handed, strict=True):
            if outcome is Handed.FORWARDED:  # decide_handover(ELSEWHERE) is FORWARD
                continue
            if outcome is Handed.UNHEARD:  # its node is gone: what could wait is owed one
                failed += [_outgoing(pk, it) for _, run in pk_runs for it in run if it[2]]
                continue
            # A lease of ours without a local endpoint is a claim in progress or one
            # being released: treated as nowhere (the store then re-checks the lease).
            here = outcome is Handed.HELD_HERE and pk in self._peers
            for queueable, run in pk_runs:
                route = decide_handover(Where.HERE if here else Where.NOWHERE, queueable)
                if route is Route.DELIVER:
                    await self._deliver_here(pk, run, offline)
                elif route is Route.QUEUE:
                    offline += [_outgoing(pk, it) for it in run]
        if offline:
            failed += await self._enqueue(offline)
        await self._expire_senders(failed)

    async def _deliver_here(self, pk: PeerKey, run: list[_Item],
                            offline: list[_Outgoing]) -> None:
        """Deliver to a peer that registered here since its messages were posted (if it
        left again meanwhile, what may wait offline goes to ``offline``)."""
        for n, it in enumerate(run):
            here = self._peers.get(pk)
            if here is None:
                offline += [_outgoing(pk, rest) for rest in run[n:] if rest[2]]
                return
            await here.deliver(it[1])

    async def _enqueue(self, offline: list[_Outgoing]) -> list[_Outgoing]:
        """Hand ``offline`` to the store; return the messages whose senders are owed an
        EXPIRE, route again those whose destination came online meanwhile."""
        parcels = [Parcel(b.key, b.dst, b.sender.peer_id, b.frame, b.sender.queue_limit,
                          bool(b.sender.token)) for b in offline]
        try:
            outcomes = await self.queue.put(parcels)
        except ClusterUnavailable as exc:
            logger.error("could not queue %d messages (%s); their senders get EXPIRE",
                         len(offline), exc)
            return offline
        failed: list[_Outgoing] = []
        refused: dict[int, Endpoint] = {}
        for b, outcome in zip(offline, outcomes, strict=True):
            if outcome is Enqueued.FULL:
                logger.debug("an offline queue is full; EXPIRE to its sender")
                failed.append(b)
            elif outcome is Enqueued.SENDER_FULL:
                refused[id(b.sender)] = b.sender
            elif outcome is Enqueued.ONLINE:
                if b.attempts >= _MAX_REROUTES:
                    failed.append(b)
                else:
                    b.attempts += 1
                    self._post(b)
        for sender in refused.values():
            await self.refuse_sender(sender)
        return failed

    async def _expire_senders(self, items: list[_Outgoing]) -> None:
        for b in items:
            await b.sender.deliver(expire_frame(b.dst, b.sender.peer_id))

    async def refuse_sender(self, src: Endpoint) -> None:
        """Close a sender that has too many messages waiting for offline peers."""
        limit_hit(src.key, "sender queue", "peer")
        await src.shut(error_frame(Errors.SENDER_QUEUE_FULL), 1008, "sender queue limit")

    async def _tell_moved(self, node: str, key: str, peer_id: str) -> None:
        try:
            await self.bus.moved(node, key, peer_id)
        except ClusterUnavailable as exc:
            logger.warning("could not notify node %s (%s)", node, exc)

    # --- inbound from other nodes (the BusListener) -----------------------------------

    async def on_frames(self, key: str, dst: str, queueable: bool, frames: list[str]
                        ) -> None:
        """Deliver frames another node sent for a peer here; if it left or moved between
        lookup and arrival, route what may wait offline again."""
        pk = (key, dst)
        for n, frame in enumerate(frames):
            ep = self._peers.get(pk)
            if ep is None:
                if queueable:
                    for rest in frames[n:]:
                        src = orjson.loads(rest).get("src", "")
                        self._post(_Outgoing(_Ghost(key, src, self), key, dst, rest, True))
                return
            await ep.deliver(frame)

    def on_moved(self, key: str, peer_id: str) -> None:
        """Another node took over this id with the same token: forget the local one."""
        ep = self._peers.get((key, peer_id))
        if ep is not None:
            self._remove_local(ep)

    async def on_restored(self) -> None:
        """The bus is back after an outage: re-assert our leases, and tell local senders
        whose queued messages the store may have lost."""
        logger.warning("redis connection restored; re-asserting %d peers", len(self._peers))
        await self._renew_all()
        owed = self.queue.possibly_lost()
        if owed:
            logger.warning("telling %d senders their queued messages may be lost", len(owed))
        for key, dst, sender in owed:
            await self.send_to(key, sender, expire_frame(dst, sender))

    # --- leases -----------------------------------------------------------------------

    async def _renew_forever(self, period: float) -> None:
        while True:
            raise_if_cancelled()
            await asyncio.sleep(period)
            try:
                await self._renew_all()
            except ClusterUnavailable as exc:
                logger.error("could not renew leases (%s)", exc)

    async def _renew_all(self) -> None:
        for ep in await self.directory.renew(list(self._peers.values())):
            logger.warning("id %r was claimed elsewhere while redis was away", ep.peer_id)
            if self._remove_local(ep):
                await ep.shut(ID_TAKEN_FRAME, 1008, "id taken during redis outage")

    # --- expiry -----------------------------------------------------------------------

    async def _sweep_forever(self) -> None:
        while True:
            raise_if_cancelled()
            await asyncio.sleep(self._cleanup_interval)
            try:
                await self.expire_now(time.monotonic())
            except ClusterUnavailable as exc:
                logger.error("could not sweep the offline queue (%s)", exc)

    async def expire_now(self, now: float) -> None:
        """Drop timed-out queues and send each waiting sender one EXPIRE."""
        for item in await self.queue.expire(now):
            for sender in item.senders:
                await self.send_to(item.key, sender, expire_frame(item.dst, sender))

    # --- closing ----------------------------------------------------------------------

    async def disconnect_key(self, key: str, frame: str | None, code: int,
                             reason: str) -> int:
        """Close every endpoint registered here under ``key``; return how many."""
        victims = [ep for (k, _), ep in self._peers.items() if k == key]
        for ep in victims:
            await ep.shut(frame, code, reason)
        return len(victims)

    async def close_all(self, frame: str | None, code: int, reason: str) -> None:
        """Close every registered endpoint and free its id (used at shutdown)."""
        endpoints = list(self._peers.values())
        for ep in endpoints:
            await ep.shut(frame, code, reason)
        for ep in endpoints:
            await self.unregister(ep)


class _Ghost:
    """Stands for a sender on another node when re-queueing a message."""

    def __init__(self, key: str, peer_id: str, hub: Hub) -> None:
        self.key, self.peer_id, self.token, self._hub = key, peer_id, "", hub
        self.queue_limit = 0

    async def deliver(self, frame: str) -> None:
        await self._hub.send_to(self.key, self.peer_id, frame)

    async def shut(self, frame: str | None, code: int, reason: str = "") -> None:
        return None


class _Nobody:
    """The sender of a server frame (``send_to``): nobody to tell if it goes astray."""

    key = peer_id = token = ""
    queue_limit = 0

    async def deliver(self, frame: str) -> None:
        return None

    async def shut(self, frame: str | None, code: int, reason: str = "") -> None:
        return None


_NOBODY = _Nobody()
