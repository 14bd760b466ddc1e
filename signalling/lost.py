"""Closing the session rows of a node that died (run by a surviving node)."""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import close_old_connections
from django.utils import timezone

logger = logging.getLogger(__name__)

REASON_NODE_LOST = "node lost"


def close_lost_sessions(node: str, since: datetime, until: datetime | None) -> int:
    """Close the open rows of ``node`` that one dead incarnation of it opened: connected
    at or after ``since`` and, when the node came back under the same name, before
    ``until`` (the rows of the new incarnation stay open). Synchronous; returns how many.
    """
    from signalling.models import PeerSession

    close_old_connections()
    rows = PeerSession.objects.filter(node=node[:100], disconnected_at__isnull=True,
                                      connected_at__gte=since)
    if until is not None:
        rows = rows.filter(connected_at__lt=until)
    now = timezone.now()
    count = rows.update(disconnected_at=now, last_seen=now, close_reason=REASON_NODE_LOST)
    if count:
        logger.warning("closed %d sessions of lost node %s", count, node)
    return count
