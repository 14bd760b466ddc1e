"""The process-wide hub, built lazily from settings."""

from __future__ import annotations

import logging

from django.conf import settings

from signalling.config import get_config
from signalling.guards import IpGuard
from signalling.hub import LocalHub

logger = logging.getLogger(__name__)

_hub: LocalHub | None = None


def get_hub() -> LocalHub:
    """The hub of this process (created on first use): Redis-backed when REDIS_URL is set."""
    global _hub
    if _hub is None:
        _hub = _make_hub()
    return _hub


def _make_hub() -> LocalHub:
    cfg = get_config()
    if not settings.REDIS_URL:
        return LocalHub(cfg.queue_limit, cfg.expire_timeout, cfg.cleanup_interval,
                        cfg.sender_queue_limit)
    from peerhub.env import node_name
    from signalling.cluster import RedisHub

    hub = RedisHub(settings.REDIS_URL, settings.REDIS_PREFIX, node_name(), cfg.queue_limit,
                   cfg.expire_timeout, cfg.cleanup_interval, lease=cfg.alive_timeout,
                   sender_queue_limit=cfg.sender_queue_limit)
    logger.info("cluster mode: node %s on %s", hub.node_id, settings.REDIS_PREFIX)
    return hub


def reset_hub() -> None:
    """Forget the hub and the cached configuration (tests only)."""
    global _hub, _guard
    _hub = None
    _guard = None
    get_config.cache_clear()


_guard: IpGuard | None = None


def get_ip_guard() -> IpGuard:
    """The per-address admission guard of this process."""
    global _guard
    if _guard is None:
        cfg = get_config()
        _guard = IpGuard(cfg.max_sockets_per_ip, cfg.connect_rate, cfg.connect_burst)
    return _guard
