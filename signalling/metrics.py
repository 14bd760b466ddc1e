"""Counting limit hits: a log line each, and per-key counters the admin shows.

Counting is an in-memory increment; the session recorder writes the counters to the
database with its next batch, so the path that refuses something never waits.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

logger = logging.getLogger(__name__)

#: (api key or "", limit name) -> hits not yet written to the database
pending_hits: Counter[tuple[str, str]] = Counter()


def client_address(where: Any) -> str:
    """The client address of an ASGI scope, or ``where`` itself when it is a string."""
    if isinstance(where, str):
        return where
    client = where.get("client") or ("?",)
    return str(client[0])


def limit_hit(api_key: str, limit: str, where: Any) -> None:
    """Note that ``limit`` refused something for ``api_key`` (from scope or address)."""
    from signalling.sessions import get_recorder

    pending_hits[(api_key, limit)] += 1
    logger.warning("limit %r refused a client at %s", limit, client_address(where))
    get_recorder().wake()


def take_pending() -> Counter[tuple[str, str]]:
    """Remove and return the counts not yet written."""
    taken = Counter(pending_hits)
    pending_hits.clear()
    return taken
