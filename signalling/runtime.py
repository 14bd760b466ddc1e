"""Shortcuts to the parts of this process's :class:`~signalling.node.Node`."""

from __future__ import annotations

from signalling.guards import IpGuard
from signalling.hub import Hub
from signalling.node import get_node, reset_node


def get_hub() -> Hub:
    """The hub of this process: Redis-backed when REDIS_URL is set."""
    return get_node().hub


def get_ip_guard() -> IpGuard:
    """The per-address admission guard of this process."""
    return get_node().ip_guard


def reset_hub() -> None:
    """Forget the node (its hub, guard) and the cached configuration (tests only)."""
    reset_node()
