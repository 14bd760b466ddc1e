"""The process-wide hub, built lazily from settings."""

from __future__ import annotations

from signalling.config import get_config
from signalling.hub import LocalHub

_hub: LocalHub | None = None


def get_hub() -> LocalHub:
    """The hub of this process (created on first use)."""
    global _hub
    if _hub is None:
        cfg = get_config()
        _hub = LocalHub(cfg.queue_limit, cfg.expire_timeout, cfg.cleanup_interval)
    return _hub


def reset_hub() -> None:
    """Forget the hub and the cached configuration (tests only)."""
    global _hub
    _hub = None
    get_config.cache_clear()
