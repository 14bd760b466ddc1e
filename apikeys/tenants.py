"""Looking up a key's tenant settings, cached so a connect costs at most one query.

The relay path never comes here: a connection resolves its :class:`Tenant` once, when
it registers, and keeps it.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, connection

from apikeys.models import ApiKey
from signalling.protocol import has_unstorable
from signalling.tokens import verify_token


@dataclass(frozen=True, slots=True)
class Tenant:
    """An immutable snapshot of one active key's settings."""

    key: str
    concurrent_limit: int
    allow_discovery: bool
    allowed_origins: tuple[str, ...]
    rate_limit: int
    queue_limit: int
    signing_secret: str = ""
    stun_urls: tuple[str, ...] = ()
    signed_tokens_required: bool = False
    rate_burst: int = 0
    previous_secret: str = ""
    previous_secret_until: float = 0.0  # Unix seconds

    def accepts_token(self, peer_id: str, token: str, now: float) -> bool:
        """Tell whether ``token`` may hold ``peer_id`` (always, unless signed tokens are
        required: then one signed with the signing secret, or with the previous one
        while its grace period lasts)."""
        if not self.signed_tokens_required:
            return True
        if verify_token(self.signing_secret, self.key, peer_id, token, now):
            return True
        return (now < self.previous_secret_until
                and verify_token(self.previous_secret, self.key, peer_id, token, now))

    def message_rate(self, server_rate: float, server_burst: float) -> tuple[float, float]:
        """``(rate, burst)`` for one peer's messages under this key.

        The key's own rate (or the server's RATE_LIMIT); the key's own burst, else equal
        to the key's own rate, else the server's RATE_BURST (never below the rate).
        """
        rate = float(self.rate_limit or server_rate)
        if self.rate_burst:
            return rate, float(self.rate_burst)
        if self.rate_limit:
            return rate, rate
        return rate, max(rate, float(server_burst))

    def allows_origin(self, origin: str | None) -> bool:
        """Tell whether a request from ``origin`` may use this key."""
        if not self.allowed_origins:
            return True
        return origin is not None and origin.rstrip("/") in self.allowed_origins

    @property
    def discovery(self) -> bool:
        """Discovery is on for this key, or for every key by ALLOW_DISCOVERY."""
        return self.allow_discovery or bool(settings.PEERHUB_ALLOW_DISCOVERY)


def tenant_from_row(row: ApiKey) -> Tenant:
    """Snapshot an :class:`ApiKey` row."""
    secret = row.token_secret if row.require_signed_tokens else ""
    previous, until = row.accepted_previous_secret() if secret else ("", 0.0)
    return Tenant(row.key, row.concurrent_limit, row.allow_discovery,
                  tuple(row.origin_list()), row.rate_limit, row.queue_limit,
                  signing_secret=secret, stun_urls=tuple(row.stun_list()),
                  signed_tokens_required=row.require_signed_tokens,
                  rate_burst=row.rate_burst, previous_secret=previous,
                  previous_secret_until=until)


def load_tenant(key: str) -> Tenant | None:
    """Read an active key's tenant from the database (synchronous).

    Runs on one dedicated thread whose connection stays open; a broken connection is
    dropped and the query tried once more.
    """
    for attempt in (1, 2):
        try:
            row = ApiKey.objects.filter(key=key, active=True).first()
            return None if row is None else tenant_from_row(row)
        except DatabaseError:
            connection.close()
            if attempt == 2:
                raise
    return None


_MAX_KEY_LENGTH = 64


class TenantCache:
    """Tenants by key, cached for KEY_CACHE_SECONDS, read on one dedicated thread.

    One per process, owned by :class:`signalling.node.Node` (``get_node().tenants``).
    Concurrent look-ups of one key share a single query (a burst of connections costs
    one query, not one each).
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        self._cache: dict[str, tuple[float, Tenant | None]] = {}
        self._inflight: dict[str, asyncio.Future[Tenant | None]] = {}
        self._db_thread = ThreadPoolExecutor(max_workers=1,
                                             thread_name_prefix="peerhub-tenants")
        self._max = max_entries

    async def get(self, key: str) -> Tenant | None:
        """The active tenant for ``key``, or None."""
        if len(key) > _MAX_KEY_LENGTH or has_unstorable(key):
            return None  # no key can look like this (and PostgreSQL would refuse a NUL)
        hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < settings.PEERHUB_KEY_CACHE_SECONDS:
            return hit[1]
        loop = asyncio.get_running_loop()
        pending = self._inflight.get(key)
        if pending is None or pending.get_loop() is not loop:
            pending = self._inflight[key] = loop.create_task(self._load(key))
        return await asyncio.shield(pending)

    async def _load(self, key: str) -> Tenant | None:
        started = time.monotonic()
        try:
            tenant = await asyncio.get_running_loop().run_in_executor(
                self._db_thread, load_tenant, key)
        finally:
            self._inflight.pop(key, None)
        if len(self._cache) > self._max:
            self._cache.clear()
        self._cache[key] = (started, tenant)
        return tenant

    def forget(self, key: str | None = None) -> None:
        """Drop the cached tenant for ``key`` (or all)."""
        if key is None:
            self._cache.clear()
        else:
            self._cache.pop(key, None)


def _tenants() -> TenantCache:
    from signalling.node import get_node

    return get_node().tenants


async def get_tenant(key: str) -> Tenant | None:
    """The active tenant for ``key``, or None; cached for KEY_CACHE_SECONDS (this
    process's :class:`TenantCache`)."""
    return await _tenants().get(key)


def forget_cached(key: str | None = None) -> None:
    """Drop the cached tenant for ``key`` (or all), e.g. after an admin change."""
    _tenants().forget(key)


def ensure_default_key() -> ApiKey:
    """Create the default key (``PEERHUB_DEFAULT_KEY``, normally ``peerjs``) if missing."""
    row, _ = ApiKey.objects.get_or_create(
        key=settings.PEERHUB_DEFAULT_KEY, defaults={"name": "default"})
    return row
