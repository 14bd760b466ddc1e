"""Django settings for peerhub. Every value comes from the environment (see README)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url

from peerhub.env import env_bool, env_int, env_list, env_str, normalise_mount_path

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("PEERHUB_VAR_DIR", str(BASE_DIR / "var")))


def _private_dir(path: Path) -> None:
    """Create ``path`` owner-only (0700); tighten it if it exists and is ours."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_mode & 0o077 and info.st_uid == os.getuid():
        path.chmod(0o700)


def _private_file(path: Path) -> None:
    """Create ``path`` empty and owner-only (0600) if missing; tighten it if it is not."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def _embedded_secret_key() -> str:
    """Return a per-install random key kept in ``VAR_DIR``; created on first use."""
    path = VAR_DIR / "secret_key"
    if path.exists():
        return path.read_text().strip()
    _private_dir(VAR_DIR)
    key = secrets.token_urlsafe(50)
    _private_file(path)
    path.write_text(key)
    return key


SECRET_KEY = env_str("SECRET_KEY", "") or _embedded_secret_key()
#: Old SECRET_KEYs still accepted for reading (sessions, signing secrets at rest) while
#: they are rotated out; see docs/admin.md, "Rotating SECRET_KEY".
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS", [])
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["*"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# Production hardening (README, "Security"): off by default so the embedded http set-up
# works; `manage.py check --deploy` is clean with the documented production values.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# No SECURE_PROXY_SSL_HEADER: it would believe X-Forwarded-Proto from anyone. The ASGI
# wrapper (peerhub.proxy_asgi) sets the scheme from trusted proxies only.
SESSION_COOKIE_HTTPONLY = True

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "apikeys",
    "signalling",
]

MIDDLEWARE = [
    "signalling.unavailable.ServiceUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "peerhub.staticfiles.StaticFilesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "apikeys.loginthrottle.LoginThrottleMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "peerhub.urls"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

ASGI_APPLICATION = "peerhub.asgi.application"
WSGI_APPLICATION = None

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'peerhub.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The database holds password hashes and (encrypted) signing secrets: owner-only.
    _db_name = str(DATABASES["default"]["NAME"])
    if _db_name and _db_name != ":memory:" and not _db_name.startswith("file:"):
        _private_dir(Path(_db_name).parent)
        _private_file(Path(_db_name))
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = env_str("STATIC_URL", "/static/")
STATIC_ROOT = VAR_DIR / "static"
# Admin static files are served by WhiteNoise straight from the apps (no collectstatic
# needed); files collected into STATIC_ROOT are served too.
WHITENOISE_USE_FINDERS = True

REDIS_URL = env_str("REDIS_URL", "")
REDIS_PREFIX = env_str("REDIS_PREFIX", "peerhub")

# The control plane (signalling.control): channels-redis with REDIS_URL, so operator
# events reach every node; it never carries the relay. The core layer keeps an event
# for a minute, so a node that blinks catches it when it reads again.
if REDIS_URL:
    CHANNEL_LAYERS = {"default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": f"{REDIS_PREFIX}:asgi",
                   "capacity": 1000, "expiry": 60, "group_expiry": 86400}}}
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# The cache holds the admin login throttle's counters (apikeys.loginthrottle): in Redis
# when there is one, so the limit holds across the cluster.
CACHES = {"default": (
    {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
     "KEY_PREFIX": f"{REDIS_PREFIX}:cache"} if REDIS_URL else
    {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"})}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
                   "json": {"()": "peerhub.logformat.JsonFormatter"}},
    "filters": {"redact": {"()": "peerhub.logredact.RedactTokensFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler",
                             "formatter": env_str("LOG_FORMAT", "plain").lower(),
                             "filters": ["redact"]}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}},
}
# Every handler redacts tokens, including any added to this dict later.
for _handler in LOGGING["handlers"].values():  # type: ignore[attr-defined]
    if "redact" not in _handler.setdefault("filters", []):
        _handler["filters"].append("redact")

# --- The PeerServer (names follow peerjs-server's options) -------------------------
PEERHUB_PATH = normalise_mount_path(env_str("PEERHUB_PATH", "/"))
PEERHUB_DEFAULT_KEY = env_str("PEERHUB_DEFAULT_KEY", "peerjs")
PEERHUB_EXPIRE_TIMEOUT_MS = env_int("EXPIRE_TIMEOUT", 5000, minimum=1)
PEERHUB_CLEANUP_INTERVAL_MS = env_int("CLEANUP_INTERVAL", 1000, minimum=10)
PEERHUB_ALIVE_TIMEOUT_MS = env_int("ALIVE_TIMEOUT", 60000, minimum=100)
PEERHUB_CONCURRENT_LIMIT = env_int("CONCURRENT_LIMIT", 5000, minimum=1)
PEERHUB_ALLOW_DISCOVERY = env_bool("ALLOW_DISCOVERY", False)
PEERHUB_MAX_MESSAGE_SIZE = env_int("MAX_MESSAGE_SIZE", 65536, minimum=1024)
PEERHUB_QUEUE_LIMIT = env_int("QUEUE_LIMIT", 100, minimum=0)
PEERHUB_RATE_LIMIT = env_int("RATE_LIMIT", 1000, minimum=1)
PEERHUB_RATE_BURST = env_int("RATE_BURST", 5000, minimum=1)
PEERHUB_KEY_CACHE_SECONDS = env_int("KEY_CACHE_SECONDS", 2, minimum=0)
PEERHUB_TURN_URLS = env_list("TURN_URLS", [])
PEERHUB_TURN_SECRET = env_str("TURN_SECRET", "")
PEERHUB_TURN_TTL = env_int("TURN_TTL", 86400, minimum=60)
PEERHUB_MAX_SOCKETS_PER_IP = env_int("MAX_SOCKETS_PER_IP", 20000, minimum=1)
PEERHUB_CONNECT_RATE = env_int("CONNECT_RATE", 1000, minimum=1)
PEERHUB_CONNECT_BURST = env_int("CONNECT_BURST", 10000, minimum=1)
PEERHUB_SENDER_QUEUE_LIMIT = env_int("SENDER_QUEUE_LIMIT", 1000, minimum=0)
PEERHUB_SEND_BUFFER_LIMIT = env_int("SEND_BUFFER_LIMIT", 2 * 1024 * 1024, minimum=16384)
PEERHUB_LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
PEERHUB_LOGIN_FAILURE_WINDOW = env_int("LOGIN_FAILURE_WINDOW", 900, minimum=1)
# In a cluster, key changes reach every node through the control plane at once; the
# watcher is then the slow reconciliation only.
PEERHUB_KEY_WATCH_MS = env_int("KEY_WATCH_INTERVAL", 30000 if REDIS_URL else 1500,
                               minimum=100)
PEERHUB_CONTROL_RECONCILE_MS = env_int("CONTROL_RECONCILE_INTERVAL", 30000, minimum=100)
# Seconds a SIGTERM'd node takes to close its peers (so their reconnects spread over the
# other nodes); a lone node has nowhere to send them and closes them at once.
PEERHUB_DRAIN_WINDOW = env_int("DRAIN_WINDOW", 10 if REDIS_URL else 0, minimum=0)
#: Addresses and networks allowed to scrape ``/metrics`` on the public port.
PEERHUB_METRICS_ALLOW = env_list("METRICS_ALLOW", ["127.0.0.1/32", "::1/128"])
#: Days closed peer sessions are kept; the serving process prunes older ones hourly.
PEERHUB_SESSION_RETENTION_DAYS = env_int("SESSION_RETENTION_DAYS", 0, minimum=0)
