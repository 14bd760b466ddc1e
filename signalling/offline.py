"""The offline queue: messages kept for a destination that has not registered yet.

One FIFO per ``(key, dst)``. Its clock starts with the first queued message; after the
expire timeout the whole queue is dropped and each distinct sender is owed one EXPIRE.
Time is passed in, so every rule here is testable without waiting.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

PeerKey = tuple[str, str]  # (api key, peer id)


@dataclass(slots=True)
class _Pending:
    created_at: float
    items: deque[tuple[str, str]] = field(default_factory=deque)  # (src, frame)


@dataclass(frozen=True, slots=True)
class Expired:
    """A destination whose queue timed out, and the senders owed an EXPIRE."""

    key: str
    dst: str
    senders: tuple[str, ...]


class QueueFull(Exception):
    """The destination's queue holds its maximum; the sender is owed an EXPIRE now."""


class OfflineQueue:
    """Bounded per-destination queues with expiry, keyed by API key and peer id."""

    def __init__(self, limit: int, expire_after: float) -> None:
        self.limit = limit
        self.expire_after = expire_after
        self._queues: dict[PeerKey, _Pending] = {}

    def __len__(self) -> int:
        return len(self._queues)

    def push(self, key: str, dst: str, src: str, frame: str, now: float) -> None:
        """Append ``frame`` for ``dst``; raise :class:`QueueFull` past the limit."""
        pending = self._queues.get((key, dst))
        if pending is None:
            if self.limit == 0:
                raise QueueFull(dst)
            pending = self._queues[(key, dst)] = _Pending(now)
        elif len(pending.items) >= self.limit:
            raise QueueFull(dst)
        pending.items.append((src, frame))

    def drain(self, key: str, dst: str) -> list[str]:
        """Remove and return every frame queued for ``dst``, oldest first."""
        pending = self._queues.pop((key, dst), None)
        return [] if pending is None else [frame for _, frame in pending.items]

    def discard(self, key: str, dst: str) -> None:
        """Forget ``dst``'s queue without expiring it."""
        self._queues.pop((key, dst), None)

    def expire(self, now: float) -> list[Expired]:
        """Remove every queue older than the timeout; return who is owed an EXPIRE."""
        due = [pk for pk, p in self._queues.items() if now - p.created_at >= self.expire_after]
        return [self._expire_one(pk) for pk in due]

    def _expire_one(self, peer: PeerKey) -> Expired:
        pending = self._queues.pop(peer)
        senders = tuple(dict.fromkeys(src for src, _ in pending.items))
        return Expired(peer[0], peer[1], senders)
