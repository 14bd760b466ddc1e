"""Activating and deactivating keys, from the admin or the command line.

Deactivation is a database write plus dropping this process's cached tenant. New
connections with the key then get ``INVALID-KEY`` at once here (and within
KEY_CACHE_SECONDS elsewhere); live peers of the key are disconnected by every serving
process's key watcher (:mod:`signalling.keywatch`) within a couple of seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.db.models import QuerySet

from apikeys.models import ApiKey
from apikeys.tenants import forget_cached

logger = logging.getLogger(__name__)


class UnknownKey(LookupError):
    """No API key has this key string."""


def set_active(keys: QuerySet[ApiKey], active: bool) -> int:
    """Switch the keys in ``keys`` on or off; return how many changed."""
    changing = list(keys.exclude(active=active).values_list("key", flat=True))
    count = ApiKey.objects.filter(key__in=changing).update(active=active)
    forget_keys(changing)
    logger.info("%s %d API keys", "activated" if active else "deactivated", count)
    return count


def deactivate_key(key: str) -> ApiKey:
    """Deactivate the key whose key string is ``key``; raise :class:`UnknownKey`."""
    row = ApiKey.objects.filter(key=key).first()
    if row is None:
        raise UnknownKey(key)
    set_active(ApiKey.objects.filter(pk=row.pk), False)
    row.refresh_from_db()
    return row


def forget_keys(keys: Iterable[str]) -> None:
    """Drop this process's cached tenants for ``keys`` and tell every node (control plane)."""
    keys = list(keys)
    for key in keys:
        forget_cached(key)
    from signalling.apps import _announce

    _announce(keys)
