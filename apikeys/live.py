"""How many peers are online per key: the one place the admin and dashboard ask.

In the serving process the hub knows (``keys_online()``; across the cluster once the
hub is Redis-backed). A separate process such as a management command has an empty
in-memory hub, so it counts the open session rows in the database instead.
"""

from __future__ import annotations

from django.db.models import Count

from signalling.models import PeerSession
from signalling.runtime import get_hub


def live_peer_counts() -> dict[str, int]:
    """Live peers per key as the hub sees them (synchronous; call from a sync view)."""
    return dict(get_hub().keys_online())


def open_session_counts() -> dict[str, int]:
    """Sessions with no recorded end, per key (what a separate process can see)."""
    rows = (PeerSession.objects.filter(disconnected_at__isnull=True)
            .order_by().values("api_key").annotate(n=Count("id")))
    return {row["api_key"]: row["n"] for row in rows}
