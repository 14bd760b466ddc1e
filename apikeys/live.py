"""How many peers are online per key: the one place the admin and dashboard ask.

In the serving process the hub knows (``keys_online()``; across the cluster once the
hub is Redis-backed). A separate process such as a management command has an empty
in-memory hub, so it counts the open session rows in the database instead.
"""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from django.db.models import Count
from redis.exceptions import RedisError

from signalling.errors import ClusterUnavailable
from signalling.models import PeerSession
from signalling.runtime import get_hub

logger = logging.getLogger(__name__)


def live_peer_counts() -> dict[str, int]:
    """Live peers per key as the hub sees them (synchronous; call from a sync view)."""
    return dict(get_hub().keys_online())


def live_peer_ids(key: str) -> list[str]:
    """The ids connected under ``key`` right now, sorted (synchronous).

    Asks the hub (the whole cluster when it is Redis-backed); where the hub cannot be
    asked from here, the ids of the key's open session rows.
    """
    try:
        ids = async_to_sync(get_hub().peer_ids)(key)
    except (RedisError, ClusterUnavailable, RuntimeError, OSError) as exc:
        logger.warning("could not ask the hub for live peers (%s); using open sessions", exc)
        ids = list(PeerSession.objects.filter(api_key=key, disconnected_at__isnull=True)
                   .values_list("peer_id", flat=True))
    return sorted(set(ids))


def open_session_counts() -> dict[str, int]:
    """Sessions with no recorded end, per key (what a separate process can see)."""
    rows = (PeerSession.objects.filter(disconnected_at__isnull=True)
            .order_by().values("api_key").annotate(n=Count("id")))
    return {row["api_key"]: row["n"] for row in rows}
