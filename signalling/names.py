"""Every Redis key and channel name peerhub uses, from one place.

PeerJS ids and API keys may hold any character (spaces, colons, NUL), so each
variable part is length-prefixed: ``{prefix}:peer:{len(key)}:{key}:{id}`` can always
be split back without ambiguity.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

#: How many lease and id-set names each :class:`Names` keeps made: every id is named at
#: its claim, its release and each renewal, and its key's set each time too.
_CACHED = 8192


class Names:
    """Redis names under one prefix (several clusters may share a Redis)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        #: :meth:`lease_name`, remembered: a release finds the name its claim made.
        self.peer: Callable[[str, str], str] = lru_cache(_CACHED)(self.lease_name)
        #: :meth:`ids_name`, remembered (one per API key in use).
        self.ids: Callable[[str], str] = lru_cache(_CACHED)(self.ids_name)

    def lease_name(self, key: str, peer_id: str) -> str:
        """String ``node|token`` of the holder of ``peer_id`` under ``key`` (a lease)."""
        return f"{self.prefix}:peer:{len(key)}:{key}:{peer_id}"

    def ids_name(self, key: str) -> str:
        """Sorted set of ``key``'s registered ids, scored by lease expiry (ms)."""
        return f"{self.prefix}:ids:{len(key)}:{key}"

    def ids_pattern(self) -> str:
        """SCAN pattern matching every :meth:`ids_name` set."""
        return f"{self.prefix}:ids:*"

    def key_of_ids(self, name: str) -> str:
        """The API key an :meth:`ids_name` name belongs to."""
        rest = name[len(self.prefix) + len(":ids:"):]
        length, _, tail = rest.partition(":")
        return tail[: int(length)]

    def queue(self, key: str, dst: str) -> str:
        """List of JSON ``[src, frame]`` items waiting for ``dst`` under ``key``."""
        return f"{self.prefix}:q:{len(key)}:{key}:{dst}"

    def split_queue(self, name: str) -> tuple[str, str]:
        """``(key, dst)`` of a :meth:`queue` name."""
        rest = name[len(self.prefix) + len(":q:"):]
        length, _, tail = rest.partition(":")
        n = int(length)
        return tail[:n], tail[n + 1:]

    def sender(self, key: str, src: str) -> str:
        """Counter of messages ``src`` queued for offline peers recently."""
        return f"{self.prefix}:qs:{len(key)}:{key}:{src}"

    def queue_clock(self) -> str:
        """Sorted set of queue names scored by their first message's time (ms)."""
        return f"{self.prefix}:qclock"

    def nodes(self) -> str:
        """Hash of every node that announced itself: node id -> JSON ``{name, started}``."""
        return f"{self.prefix}:nodes"

    def alive(self, node_id: str) -> str:
        """A node's presence, renewed while it runs; its expiry means the node is lost."""
        return f"{self.prefix}:alive:{node_id}"

    def reaping(self, node_id: str) -> str:
        """Lock held by the one survivor closing a lost node's sessions."""
        return f"{self.prefix}:reap:{node_id}"

    def bans(self) -> str:
        """Hash of banned addresses: address -> JSON ``{until, reason}`` (epoch seconds)."""
        return f"{self.prefix}:bans"

    def node(self, node_id: str) -> str:
        """Pub/sub channel of one node."""
        return f"{self.prefix}:node:{node_id}"
