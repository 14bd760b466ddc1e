"""When to try the server again: exponential back-off with jitter (pure)."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["ReconnectPolicy"]


@dataclass(frozen=True)
class ReconnectPolicy:
    """Delays before reconnection attempts.

    ``failures`` counts losses and failed attempts since the server last sent OPEN.
    With none (a ``reconnect()`` after your own ``disconnect()``) there is no wait.
    After the ``n``-th failure the wait is ``min(limit, first * factor ** (n - 1))``,
    shortened by a random fraction of at most ``jitter`` so that many peers of one
    server do not all come back in the same instant. ``max_attempts`` (None: forever)
    bounds the attempts that ``Peer(reconnect=True)`` makes by itself.
    """

    first: float = 0.5
    factor: float = 2.0
    limit: float = 10.0
    jitter: float = 0.5
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if self.first < 0 or self.limit < self.first or self.factor < 1:
            raise ValueError("need 0 <= first <= limit and factor >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter is a fraction between 0 and 1")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1 (or None)")

    def base_delay(self, failures: int) -> float:
        """The wait before the next attempt, without jitter."""
        if failures <= 0:
            return 0.0
        # cap the exponent: the limit is reached long before a float overflows
        return min(self.limit, self.first * self.factor ** min(failures - 1, 64))

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        """The wait before the next attempt, with jitter."""
        base = self.base_delay(failures)
        return base * (1 - self.jitter * (rng or _rng).random())

    def gives_up(self, failures: int) -> bool:
        """Whether automatic reconnection stops after this many failed attempts."""
        return self.max_attempts is not None and failures > self.max_attempts


_rng = random.Random()
