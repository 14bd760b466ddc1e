"""A token bucket: a steady rate with room for bursts. Time is passed in."""

from __future__ import annotations

#: The ASGI extension by which a websocket server offers to charge the frames that are
#: not whole messages (pings, pongs, fragments) to the application's per-peer message
#: bucket. The server lists it in ``scope["extensions"]``; the application then sends
#: ``{"type": SHARED_BUCKET, "bucket": TokenBucket}`` once, so that a peer has one rate
#: for everything it sends. Without it (Channels' test communicator, daphne) the
#: application counts its messages alone.
SHARED_BUCKET = "peerhub.shared_bucket"


class TokenBucket:
    """Allows ``rate`` events per second on average and up to ``burst`` at once."""

    __slots__ = ("rate", "burst", "_tokens", "_stamp")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._stamp = now

    def take(self, now: float) -> bool:
        """Spend one token if there is one; tell whether the event is allowed."""
        tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if tokens < 1.0:
            self._tokens = tokens
            return False
        self._tokens = tokens - 1.0
        return True
