"""The offline queue: messages kept for a destination that has not registered yet.

One FIFO per ``(key, dst)``. Its clock starts with the first queued message; after the
expire timeout the whole queue is dropped and each distinct sender is owed one EXPIRE.
Time is passed in, so every rule here is testable without waiting.
"""

from __future__ import annotations

from collections import Counter, deque
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


class SenderQueueFull(Exception):
    """The sender has too many messages waiting for offline peers."""


class OfflineQueue:
    """Bounded per-destination queues with expiry, keyed by API key and peer id."""

    def __init__(self, limit: int, expire_after: float, sender_limit: int = 0) -> None:
        self.limit = limit
        self.expire_after = expire_after
        self.sender_limit = sender_limit  # 0: no per-sender bound
        self._queues: dict[PeerKey, _Pending] = {}
        self._per_sender: Counter[PeerKey] = Counter()

    def __len__(self) -> int:
        return len(self._queues)

    def queued(self) -> int:
        """Messages waiting in every queue (read by /metrics)."""
        return sum(self._per_sender.values())

    def push(self, key: str, dst: str, src: str, frame: str, now: float,
             limit: int = 0) -> None:
        """Append ``frame`` for ``dst``.

        Raises :class:`QueueFull` past the destination's bound (``limit``, or the
        queue's default when 0) and :class:`SenderQueueFull` past the sender's.
        """
        limit = limit or self.limit
        if self.sender_limit and self._per_sender[(key, src)] >= self.sender_limit:
            raise SenderQueueFull(src)
        pending = self._queues.get((key, dst))
        if limit <= 0 or (pending is not None and len(pending.items) >= limit):
            raise QueueFull(dst)
        if pending is None:
            pending = self._queues[(key, dst)] = _Pending(now)
        pending.items.append((src, frame))
        self._per_sender[(key, src)] += 1

    def _forget(self, key: str, pending: _Pending) -> None:
        for src, _ in pending.items:
            self._per_sender[(key, src)] -= 1
            if self._per_sender[(key, src)] <= 0:
                del self._per_sender[(key, src)]

    def drain(self, key: str, dst: str) -> list[str]:
        """Remove and return every frame queued for ``dst``, oldest first."""
        pending = self._queues.pop((key, dst), None)
        if pending is None:
            return []
        self._forget(key, pending)
        return [frame for _, frame in pending.items]

    def expire(self, now: float) -> list[Expired]:
        """Remove every queue older than the timeout; return who is owed an EXPIRE."""
        due = [pk for pk, p in self._queues.items() if now - p.created_at >= self.expire_after]
        return [self._expire_one(pk) for pk in due]

    def _expire_one(self, peer: PeerKey) -> Expired:
        pending = self._queues.pop(peer)
        self._forget(peer[0], pending)
        senders = tuple(dict.fromkeys(src for src, _ in pending.items))
        return Expired(peer[0], peer[1], senders)
