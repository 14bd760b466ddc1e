"""The control plane: operator actions that reach every node, from any Django code.

Views, management commands and tasks call these; each sends one event to the Channels
group :data:`GROUP` on the channel layer (channels-redis with ``REDIS_URL``, so every
node hears it at once; the in-memory layer otherwise, which reaches the serving process
itself, e.g. the admin). Every node's :class:`~signalling.control_listener.ControlListener`
acts on it. The relay never goes this way (it stays on the hub's coalesced Redis path).

Async functions, and sync wrappers for sync code (``async_to_sync``; not callable from a
running event loop, use the ``a``-prefixed ones there)::

    kick_peer(key, peer_id, reason="kicked")    # ERROR "Kicked by the operator", 1008
    ban_address(address, seconds, reason="")   # refused at admission (ERROR, 1008) and
    unban_address(address)                     # its open sockets closed; 403 on HTTP
    current_bans() -> {address: (until, reason)}
    live_peers(key) -> list[LivePeer]          # the key's peers on every node

Bans are also stored (a Redis hash in a cluster), and keys' state is in the database,
so a node that was cut off from Redis when an event went out catches up by itself: it
reloads the bans and re-checks its keys every ``CONTROL_RECONCILE_INTERVAL`` and when
its channel-layer connection comes back.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from signalling.names import Names

#: The Channels group every node's control listener joins.
GROUP = "peerhub.control"
KICK_REASON = "kicked"


@dataclass(frozen=True, slots=True)
class LivePeer:
    """One registered peer id: on which node, and since when (when known)."""

    peer_id: str
    node: str
    since: datetime | None = None


async def _send(event: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer is configured (CHANNEL_LAYERS)")
    await layer.group_send(GROUP, event)


def _redis_url() -> str:
    return str(settings.REDIS_URL or "")


def _names() -> Names:
    return Names(settings.REDIS_PREFIX)


# --- kick ------------------------------------------------------------------------------

async def akick_peer(key: str, peer_id: str, reason: str = KICK_REASON) -> None:
    """Disconnect ``peer_id`` of ``key`` wherever it is connected (ERROR, then 1008)."""
    await _send({"type": "peerhub.kick", "key": key, "peer_id": peer_id,
                 "reason": reason[:100]})


def kick_peer(key: str, peer_id: str, reason: str = KICK_REASON) -> None:
    """Sync :func:`akick_peer`."""
    async_to_sync(akick_peer)(key, peer_id, reason)


def _client(url: str, decode_responses: bool = False) -> Any:
    """A short-lived asyncio client for one control-plane call. With the node's one
    ``DriverInfo``: left to redis-py, each connection object reads the package's
    metadata again (~18,000 bytecodes; the bans' reconciliation makes one every round)."""
    from redis import asyncio as aioredis

    from signalling.redis_link import DRIVER_INFO

    return aioredis.Redis.from_url(url, decode_responses=decode_responses, socket_timeout=5,
                                   socket_connect_timeout=2, driver_info=DRIVER_INFO)


# --- bans ------------------------------------------------------------------------------

async def aban_address(address: str, seconds: float, reason: str = "") -> None:
    """Refuse ``address`` on every node for ``seconds`` and close its open sockets."""
    until = time.time() + max(0.0, float(seconds))
    url = _redis_url()
    if url:
        client = _client(url)
        try:
            await client.hset(_names().bans(), address,
                              orjson.dumps({"until": until, "reason": reason[:100]}))
        finally:
            await client.aclose()
    await _send({"type": "peerhub.ban", "address": address, "until": until,
                 "reason": reason[:100]})


def ban_address(address: str, seconds: float, reason: str = "") -> None:
    """Sync :func:`aban_address`."""
    async_to_sync(aban_address)(address, seconds, reason)


async def aunban_address(address: str) -> None:
    """Lift a ban on ``address`` on every node."""
    url = _redis_url()
    if url:
        client = _client(url)
        try:
            await client.hdel(_names().bans(), address)
        finally:
            await client.aclose()
    await _send({"type": "peerhub.unban", "address": address})


def unban_address(address: str) -> None:
    """Sync :func:`aunban_address`."""
    async_to_sync(aunban_address)(address)


async def load_bans() -> dict[str, tuple[float, str]]:
    """The stored bans (cluster only): address -> (until, reason); expired ones dropped."""
    url = _redis_url()
    if not url:
        return {}
    client = _client(url)
    try:
        raw = await client.hgetall(_names().bans())
        now = time.time()
        bans: dict[str, tuple[float, str]] = {}
        gone = []
        for address, value in raw.items():
            entry = orjson.loads(value)
            name = address.decode() if isinstance(address, bytes) else str(address)
            if float(entry["until"]) <= now:
                gone.append(name)
            else:
                bans[name] = (float(entry["until"]), str(entry.get("reason", "")))
        if gone:
            await client.hdel(_names().bans(), *gone)
        return bans
    finally:
        await client.aclose()


async def acurrent_bans() -> dict[str, tuple[float, str]]:
    """The bans in force: the stored ones in a cluster, this process's node's otherwise
    (address -> (until, reason))."""
    if _redis_url():
        return await load_bans()
    from signalling.node import get_node

    return get_node().bans.entries(time.time())


def current_bans() -> dict[str, tuple[float, str]]:
    """Sync :func:`acurrent_bans`."""
    return async_to_sync(acurrent_bans)()


# --- keys ------------------------------------------------------------------------------

async def akeys_changed(keys: Iterable[str]) -> None:
    """Tell every node that these keys were edited, deactivated, deleted or had their
    signing secret rotated: each drops its cached settings and closes the keys' peers
    if the keys may no longer be used."""
    keys = sorted(set(keys))
    if keys:
        await _send({"type": "peerhub.keys", "keys": keys})


def keys_changed(keys: Iterable[str]) -> None:
    """:func:`akeys_changed` from sync code, or scheduled when an event loop runs here."""
    import asyncio

    keys = list(keys)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        async_to_sync(akeys_changed)(keys)
        return
    task = loop.create_task(akeys_changed(keys))
    _pending.add(task)
    task.add_done_callback(_pending.discard)


_pending: set[Any] = set()  # tasks scheduled by keys_changed, kept until done


# --- live peers ------------------------------------------------------------------------

async def alive_peers(key: str) -> list[LivePeer]:
    """Every peer registered under ``key`` on any node (this process's hub alone
    without ``REDIS_URL``)."""
    url = _redis_url()
    if not url:
        from signalling.node import get_node

        node = get_node()
        return [LivePeer(ep.peer_id, node.name, _since(ep))
                for ep in node.hub.endpoints() if ep.key == key]
    from signalling.redis_directory import live_ids
    from signalling.redis_link import split_holder

    names = _names()
    client = _client(url, decode_responses=True)
    try:
        ids = await live_ids(client, names, key)
        pipe = client.pipeline(transaction=False)
        for peer_id in ids:
            pipe.get(names.peer(key, peer_id))
        holders = await pipe.execute()
        nodes = await client.hgetall(names.nodes())
    finally:
        await client.aclose()
    held = []
    for peer_id, holder in zip(ids, holders, strict=True):
        if holder is None:
            continue
        node_id = split_holder(holder)[0]
        info = nodes.get(node_id)
        held.append((peer_id, str(orjson.loads(info)["name"]) if info else node_id))
    since = await sync_to_async(_live_since)(key, [peer_id for peer_id, _ in held])
    return [LivePeer(peer_id, node, since.get((peer_id, node))) for peer_id, node in held]


_SINCE_CHUNK = 500  # ids per query, well under every database's parameter limit


def _live_since(key: str, peer_ids: list[str]) -> dict[tuple[str, str], datetime]:
    """When each of ``peer_ids`` connected, from its open session row on the node that
    holds it (a row is written within the recorder's flush interval of the connect, so
    a peer that has only just arrived may have none yet)."""
    from signalling.models import PeerSession

    out: dict[tuple[str, str], datetime] = {}
    for i in range(0, len(peer_ids), _SINCE_CHUNK):
        rows = PeerSession.objects.filter(
            api_key=key, peer_id__in=peer_ids[i:i + _SINCE_CHUNK],
            disconnected_at__isnull=True).values_list("peer_id", "node", "connected_at")
        for peer_id, node, connected_at in rows:
            out[(peer_id, node)] = connected_at
    return out


def live_peers(key: str) -> list[LivePeer]:
    """Sync :func:`alive_peers`."""
    return async_to_sync(alive_peers)(key)


def _since(ep: Any) -> datetime | None:
    session = getattr(ep, "session", None)
    return getattr(session, "connected_at", None)
