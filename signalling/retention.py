"""Pruning old peer sessions (``SESSION_RETENTION_DAYS``), in small batches.

The session recorder calls :func:`prune` from its writer thread once an hour (and once
soon after start), so no request and no relay waits for it. Only closed sessions are
deleted; the hourly usage rollups keep their counts, so the dashboard's and the key
list's totals outlive the rows.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction

from signalling.models import PeerSession

logger = logging.getLogger(__name__)

BATCH = 5000


def cutoff(now: datetime, days: float) -> datetime:
    """Sessions that ended before this moment are old enough to go."""
    return now - timedelta(days=days)


def prune(before: datetime, batch: int = BATCH, dry_run: bool = False) -> int:
    """Delete closed sessions that ended before ``before``; return how many (or would)."""
    old = PeerSession.objects.filter(disconnected_at__isnull=False, disconnected_at__lt=before)
    if dry_run:
        return old.count()
    deleted = 0
    while True:
        ids = list(old.order_by().values_list("id", flat=True)[:batch])
        if not ids:
            break
        with transaction.atomic():
            deleted += PeerSession.objects.filter(id__in=ids).delete()[0]
    if deleted:
        logger.info("pruned %d peer sessions that ended before %s", deleted,
                    before.isoformat(timespec="seconds"))
    return deleted
