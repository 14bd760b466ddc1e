"""ICE consent freshness that counts late answers, as RFC 7675 words it.

aioice 0.13 sends a consent check every ~5 s (``aioice.ice.CONSENT_INTERVAL``) and
counts it failed unless its answer arrives within one STUN timeout, 500 ms, with no
retransmission; six misses in a row close the connection. RFC 7675 (section 5.1)
expires consent only when no answer has arrived to any check sent in the last 30 s.
A busy peer answers late, not never: two peers moving 50 MB in one process on a loaded
machine answered after more than 500 ms for half a minute, and aioice closed the
healthy connection mid-transfer ("Consent to send expired";
``tests/client/test_backpressure.py``, in 2 of 2 suite runs under load).

Here each check is a STUN transaction that stays open (retransmitted as RFC 8489 does)
for longer than the consent timeout, so a late answer counts for the moment its check
was sent, and consent expires ``CONSENT_TIMEOUT`` after the newest answered check was
sent. aioice has no option for it: :func:`install` replaces the one method,
``Connection.query_consent``, process-wide (the same narrow seam as ``udpbuffer``); the
close path is aioice's own.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from aioice import ice, stun

__all__ = ["CHECK_RETRANSMISSIONS", "CONSENT_TIMEOUT", "consent_expired", "install",
           "query_consent"]

log = logging.getLogger(__name__)

CONSENT_TIMEOUT = 30.0
"""Seconds after the newest answered check was sent before consent expires (RFC 7675)."""

CHECK_RETRANSMISSIONS = 6
"""A check's transaction waits 0.5 s, doubling, over 7 sends: 63.5 s, past the timeout."""


def consent_expired(newest_answered_sent_at: float, now: float,
                    timeout: float = CONSENT_TIMEOUT) -> bool:
    """Whether consent has expired: no check sent in the last ``timeout`` s was answered."""
    return now - newest_answered_sent_at >= timeout


async def query_consent(self: ice.Connection) -> None:
    """Check consent periodically (RFC 7675); close the connection once it expires."""
    assert self.remote_password is not None
    key = self.remote_password.encode("utf8")
    loop = asyncio.get_running_loop()
    fresh = loop.time()  # connectivity checks just succeeded
    checks: set[asyncio.Task[None]] = set()

    async def check(pair: Any) -> None:
        nonlocal fresh
        sent_at = loop.time()
        request = self.build_request(pair, nominate=False)
        try:
            await pair.protocol.request(request, pair.remote_addr, integrity_key=key,
                                        retransmissions=CHECK_RETRANSMISSIONS)
        except stun.TransactionError:
            return
        fresh = max(fresh, sent_at)

    try:
        while True:
            await asyncio.sleep(ice.CONSENT_INTERVAL * (0.8 + 0.4 * random.random()))
            if consent_expired(fresh, loop.time(), CONSENT_TIMEOUT):
                log.info("%s consent to send expired (no answer for %.0f s)", self,
                         loop.time() - fresh)
                self._query_consent_task = None  # close() must not cancel this task
                await self.close()
                return
            for pair in list(self._nominated.values()):
                task = asyncio.ensure_future(check(pair))
                checks.add(task)
                task.add_done_callback(checks.discard)
    finally:
        for task in list(checks):
            task.cancel()


def install() -> None:
    """Make every aioice connection of this process check consent as above."""
    if ice.Connection.query_consent is not query_consent:
        ice.Connection.query_consent = query_consent  # type: ignore[method-assign]
