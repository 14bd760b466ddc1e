"""A node's side of the control plane: it joins :data:`signalling.control.GROUP` on the
channel layer and acts on kick, ban, unban and key-change events for its own peers.

A node cut off from Redis misses events sent meanwhile; when its channel-layer
connection comes back, and every ``CONTROL_RECONCILE_INTERVAL`` anyway, it reloads the
stored bans and re-checks its peers' keys against the database (the key watcher's one
query), so it ends up where the others are.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from channels.layers import get_channel_layer
from django.db import DatabaseError
from redis.exceptions import RedisError

from apikeys.tenants import forget_cached
from signalling.cancellation import raise_if_cancelled
from signalling.control import GROUP, load_bans
from signalling.looptasks import runs_on_a_running_loop
from signalling.protocol import Errors, error_frame

if TYPE_CHECKING:
    from signalling.node import Node

logger = logging.getLogger(__name__)

CLOSE_POLICY = 1008
REASON_BANNED = "address banned"


def endpoint_address(ep: Any) -> str:
    """The client address a peer connected from ("" when unknown)."""
    session = getattr(ep, "session", None)
    return str(getattr(session, "remote_addr", "") or "")


class ControlListener:
    """Receives control events for one node; start once, stop at shutdown."""

    def __init__(self, node: Node, reconcile_interval: float) -> None:
        self.node = node
        self.reconcile_interval = reconcile_interval
        self._tasks: list[asyncio.Task[None]] = []
        self.joined = asyncio.Event()

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        """The listener's tasks (empty before :meth:`start` and after :meth:`stop`)."""
        return self._tasks

    def start(self) -> None:
        """Start listening on the running loop (idempotent)."""
        if self._tasks and runs_on_a_running_loop(self._tasks[0]):
            return
        loop = asyncio.get_running_loop()
        self.joined = asyncio.Event()
        self._tasks = [loop.create_task(self._listen_forever(), name="peerhub-control"),
                       loop.create_task(self._reconcile_forever(),
                                        name="peerhub-reconcile")]

    async def stop(self) -> None:
        """Stop listening."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _listen_forever(self) -> None:
        layer = get_channel_layer()
        if layer is None:
            logger.warning("no channel layer: control events will not reach this node")
            return
        # One channel for the node's life: events sent while Redis was away for a
        # moment wait in it (channels-redis keeps them for its expiry).
        channel = await layer.new_channel("peerhub.node.")
        delay, lost = 0.2, False
        while True:
            raise_if_cancelled()  # a Redis call can lose a stop (Python 3.11)
            try:
                await layer.group_add(GROUP, channel)
                self.joined.set()
                if lost:
                    logger.warning("control plane reconnected; reconciling")
                    await self.reconcile()
                delay, lost = 0.2, False
                while True:
                    raise_if_cancelled()
                    await self.handle(await layer.receive(channel))
            except (RedisError, OSError) as exc:
                self.joined.clear()
                if not lost:
                    logger.error("control plane lost its channel layer (%s); retrying", exc)
                lost = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _reconcile_forever(self) -> None:
        while True:
            raise_if_cancelled()
            await asyncio.sleep(self.reconcile_interval)
            await self.reconcile()

    async def reconcile(self) -> None:
        """Catch up from the stores: the bans, and the keys of this node's peers."""
        try:
            if self.node.clustered:
                bans = await load_bans()
                self.node.bans.replace({a: until for a, (until, _) in bans.items()},
                                       {a: reason for a, (_, reason) in bans.items()})
                for address in list(bans):
                    await self._close_address(address)
        except (RedisError, OSError) as exc:
            logger.warning("could not reload the bans (%s)", exc)
        from signalling.keywatch import get_key_watcher

        try:
            await get_key_watcher().check_once()
        except DatabaseError as exc:
            logger.warning("could not re-check the keys (%s)", exc)

    async def handle(self, event: dict[str, Any]) -> None:
        """Act on one control event."""
        kind = event.get("type")
        if kind == "peerhub.kick":
            await self._kick(str(event["key"]), str(event["peer_id"]),
                             str(event.get("reason") or "kicked"))
        elif kind == "peerhub.ban":
            self.node.bans.ban(str(event["address"]), float(event["until"]),
                               str(event.get("reason") or ""))
            await self._close_address(str(event["address"]))
        elif kind == "peerhub.unban":
            self.node.bans.unban(str(event["address"]))
        elif kind == "peerhub.keys":
            for key in event.get("keys", ()):
                forget_cached(str(key))
            from signalling.keywatch import get_key_watcher

            try:
                await get_key_watcher().check_once()
            except DatabaseError as exc:
                logger.warning("could not check changed keys (%s); the watcher retries",
                               exc)
        else:
            logger.warning("unknown control event %r", kind)

    async def _kick(self, key: str, peer_id: str, reason: str) -> None:
        hub = self.node.hub
        ep = hub.local(key, peer_id)
        if ep is None:
            return
        await hub.unregister(ep)
        await ep.shut(error_frame(Errors.KICKED), CLOSE_POLICY, reason)
        logger.info("kicked a peer: %s", reason)

    async def _close_address(self, address: str) -> None:
        if not self.node.bans.is_banned(address, time.time()):
            return
        hub = self.node.hub
        for ep in hub.endpoints():
            if endpoint_address(ep) == address:
                await hub.unregister(ep)
                await ep.shut(error_frame(Errors.BANNED), CLOSE_POLICY, REASON_BANNED)
