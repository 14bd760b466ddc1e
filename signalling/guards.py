"""Per-address admission: concurrent sockets and connection rate for each client IP.

Defaults are generous (a large office behind one NAT address must work out of the box);
they exist to stop one address from exhausting the process.
"""

from __future__ import annotations

from collections import Counter

from signalling.protocol import Errors
from signalling.ratelimit import TokenBucket

_MAX_TRACKED = 100_000


class IpGuard:
    """Counts open sockets and recent connection attempts per address."""

    def __init__(self, max_sockets: int, rate: float, burst: float) -> None:
        self.max_sockets = max_sockets
        self.rate = rate
        self.burst = burst
        self._open: Counter[str] = Counter()
        self._buckets: dict[str, TokenBucket] = {}

    def admit(self, ip: str, now: float) -> str | None:
        """Count a new socket from ``ip``; return an error text if it is refused.

        A refused socket is not counted, so :meth:`release` is only for admitted ones.
        """
        bucket = self._buckets.get(ip)
        if bucket is None:
            if len(self._buckets) >= _MAX_TRACKED:
                self._buckets.clear()
            bucket = self._buckets[ip] = TokenBucket(self.rate, self.burst, now)
        if not bucket.take(now):
            return Errors.IP_RATE
        # .get, not [ip]: a Counter's missing key is a Python-level __missing__ call
        sockets = self._open.get(ip, 0)
        if sockets >= self.max_sockets:
            return Errors.IP_SOCKETS
        self._open[ip] = sockets + 1
        return None

    def release(self, ip: str) -> None:
        """An admitted socket from ``ip`` closed."""
        left = self._open.get(ip, 0) - 1
        if left > 0:
            self._open[ip] = left
        else:
            self._open.pop(ip, None)

    def total_open(self) -> int:
        """Sockets currently open from every address (read by /metrics)."""
        return sum(self._open.values())

    def open_sockets(self, ip: str) -> int:
        """Sockets currently open from ``ip``."""
        return self._open.get(ip, 0)
