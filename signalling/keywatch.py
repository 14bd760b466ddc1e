"""The key watcher: disconnects live peers whose API key was deactivated or deleted.

The admin (or ``manage.py deactivatekey``) may run in another process than the peers,
so each serving process watches for itself. Every KEY_WATCH_INTERVAL it asks the
database, in one query from a worker thread, which of the keys that have peers *in this
process* are now inactive or gone, and closes those peers with an ``ERROR`` ("API key
was deactivated") and code 1008. Once a minute it also stamps ``last_used`` on the keys
in use. It starts lazily, on the first registration, and never runs on the relay path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from asgiref.sync import sync_to_async
from django.db import DatabaseError, close_old_connections
from django.utils import timezone

from apikeys.models import ApiKey
from apikeys.tenants import forget_cached
from signalling.cancellation import raise_if_cancelled
from signalling.looptasks import runs_on_a_running_loop
from signalling.protocol import Errors, error_frame
from signalling.runtime import get_hub

logger = logging.getLogger(__name__)

CLOSE_POLICY = 1008
REASON_DEACTIVATED = "key deactivated"
REASON_DELETED = "key deleted"
LAST_USED_INTERVAL = 60.0
_CHUNK = 500  # keys per query, well under every database's parameter limit


@dataclass(frozen=True, slots=True)
class DeadKeys:
    """Keys with live peers here that may no longer be used."""

    inactive: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.inactive or self.deleted)


def find_dead_keys(keys: Sequence[str], touch: bool = False) -> DeadKeys:
    """Which of ``keys`` are inactive or deleted (synchronous; one query per 500 keys).

    With ``touch``, the active ones get ``last_used`` set to now.
    """
    close_old_connections()
    active: dict[str, bool] = {}
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start:start + _CHUNK]
        active.update(ApiKey.objects.filter(key__in=chunk).values_list("key", "active"))
    dead = DeadKeys([k for k in keys if active.get(k) is False],
                    [k for k in keys if k not in active])
    if touch:
        alive = [k for k in keys if active.get(k)]
        for start in range(0, len(alive), _CHUNK):
            ApiKey.objects.filter(key__in=alive[start:start + _CHUNK]).update(
                last_used=timezone.now())
    return dead


def _local_key_counts() -> dict[str, int]:
    """Live peers per key in this process only (a cluster hub also knows the others)."""
    return get_hub().local_keys_online()


class KeyWatcher:
    """A per-process task that closes the peers of keys that were switched off."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._last_touch = 0.0

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The watcher's task (None before :meth:`ensure_started` and after :meth:`stop`)."""
        return self._task

    def ensure_started(self) -> None:
        """Start the watcher on the running loop unless it already runs there."""
        if runs_on_a_running_loop(self._task):
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name="peerhub-keywatch")

    def stop(self) -> None:
        """Cancel the watcher task (tests and shutdown)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        while True:
            raise_if_cancelled()  # closing peers goes through Redis in a cluster
            await asyncio.sleep(self.interval)
            try:
                await self.check_once()
            except DatabaseError:
                logger.exception("key watcher could not read the API keys; will retry")

    async def check_once(self) -> int:
        """Look once; close the peers of dead keys; return how many were closed."""
        keys = sorted(_local_key_counts())
        if not keys:
            return 0
        now = time.monotonic()
        touch = now - self._last_touch >= LAST_USED_INTERVAL
        dead = await sync_to_async(find_dead_keys, thread_sensitive=False)(keys, touch)
        if touch:
            self._last_touch = now
        closed = 0
        for key in dead.inactive:
            closed += await disconnect_key(key, REASON_DEACTIVATED)
        for key in dead.deleted:
            closed += await disconnect_key(key, REASON_DELETED)
        return closed


async def disconnect_key(key: str, reason: str) -> int:
    """Close every peer of ``key`` in this process with the key-deactivated ERROR."""
    forget_cached(key)
    count = await get_hub().disconnect_key(
        key, error_frame(Errors.KEY_DEACTIVATED), CLOSE_POLICY, reason)
    logger.info("closed %d peers: %s", count, reason)
    logger.debug("closed %d peers of key %r: %s", count, key, reason)
    return count


def get_key_watcher() -> KeyWatcher:
    """This process's key watcher (owned by the node; not started until needed)."""
    from signalling.node import get_node

    return get_node().key_watcher


def ensure_key_watcher() -> None:
    """Make sure the key watcher runs (cheap; called at every registration)."""
    get_key_watcher().ensure_started()


def reset_key_watcher() -> None:
    """Stop and forget the watcher, so the next one reads settings afresh (tests)."""
    from signalling.node import get_node

    get_node().forget_key_watcher()
