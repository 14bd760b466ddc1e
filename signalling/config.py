"""The PeerServer's settings, read once from Django settings into one typed object."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything the signalling code reads from settings, in seconds and bytes."""

    path: str
    expire_timeout: float
    cleanup_interval: float
    alive_timeout: float
    concurrent_limit: int
    max_message_size: int
    queue_limit: int
    rate_limit: int
    rate_burst: int
    max_sockets_per_ip: int
    connect_rate: int
    connect_burst: int
    sender_queue_limit: int

    @property
    def ws_path(self) -> str:
        """The websocket path: ``{path}peerjs``, matched exactly."""
        return f"{self.path}peerjs"


@lru_cache(maxsize=1)
def get_config() -> ServerConfig:
    """The server configuration (cached; tests call ``get_config.cache_clear()``)."""
    return ServerConfig(
        path=settings.PEERHUB_PATH,
        expire_timeout=settings.PEERHUB_EXPIRE_TIMEOUT_MS / 1000,
        cleanup_interval=settings.PEERHUB_CLEANUP_INTERVAL_MS / 1000,
        alive_timeout=settings.PEERHUB_ALIVE_TIMEOUT_MS / 1000,
        concurrent_limit=settings.PEERHUB_CONCURRENT_LIMIT,
        max_message_size=settings.PEERHUB_MAX_MESSAGE_SIZE,
        queue_limit=settings.PEERHUB_QUEUE_LIMIT,
        rate_limit=settings.PEERHUB_RATE_LIMIT,
        rate_burst=settings.PEERHUB_RATE_BURST,
        max_sockets_per_ip=settings.PEERHUB_MAX_SOCKETS_PER_IP,
        connect_rate=settings.PEERHUB_CONNECT_RATE,
        connect_burst=settings.PEERHUB_CONNECT_BURST,
        sender_queue_limit=settings.PEERHUB_SENDER_QUEUE_LIMIT,
    )
