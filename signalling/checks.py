"""Django system checks for dangerous combinations of peerhub settings."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

SDP_ROOM = 16 * 1024


@register()
def check_peerhub_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Warn about settings that make a PeerServer misbehave."""
    found: list[CheckMessage] = []
    engine = settings.DATABASES["default"]["ENGINE"]
    if settings.REDIS_URL and engine.endswith("sqlite3"):
        found.append(Warning(
            "REDIS_URL is set (cluster mode) but the database is SQLite.",
            hint="Every node needs the same database: set DATABASE_URL to PostgreSQL.",
            id="peerhub.W001"))
    if settings.PEERHUB_MAX_MESSAGE_SIZE < SDP_ROOM:
        found.append(Warning(
            f"MAX_MESSAGE_SIZE is {settings.PEERHUB_MAX_MESSAGE_SIZE} bytes.",
            hint="Browser OFFERs carry SDP of several kilobytes; keep it at 16384 or more.",
            id="peerhub.W002"))
    if settings.PEERHUB_ALIVE_TIMEOUT_MS < 2000:
        found.append(Warning(
            "ALIVE_TIMEOUT is under 2000 ms.",
            hint="Websocket pings run in whole seconds; live peers may be dropped.",
            id="peerhub.W003"))
    if settings.DEBUG and "*" in settings.ALLOWED_HOSTS:
        found.append(Warning(
            "DEBUG is on and ALLOWED_HOSTS accepts any host.",
            hint="Never expose a DEBUG server; error pages show settings and code.",
            id="peerhub.W004"))
    if not settings.USE_TZ:
        found.append(Error(
            "USE_TZ is off.",
            hint="Session rows take their times as aware UTC datetimes (signalling.sessions"
                 ".utc_now); keep USE_TZ = True.",
            id="peerhub.E001"))
    return found
