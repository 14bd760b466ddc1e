"""Start-up: every setting checked before serving, ``--help``, ``--version``.

One table (:data:`SETTINGS`) names every environment variable peerhub reads, with its
default, its meaning and how its value is checked. :func:`prepare` runs first in
``python -m peerhub.serve``: it answers ``--help`` and ``--version``, checks every
variable that is set, reaches the database and Redis, and prints one line with the
effective settings (secrets masked). A bad value ends the process with one line naming
the variable and exit code 2, never a traceback.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

EXIT_BAD_SETTING = 2


class BadSetting(ValueError):
    """A setting whose value cannot be used; the text names the variable."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name} {problem}")
        self.name = name


Check = Callable[[str], object]  # raises ValueError with what is wrong


@dataclass(frozen=True, slots=True)
class Setting:
    """One environment variable: its default (as text), meaning and check."""

    name: str
    default: str
    meaning: str
    check: Check
    secret: bool = False


# --- checks -------------------------------------------------------------------------

def integer(minimum: int = 0, maximum: int | None = None) -> Check:
    """A whole number in ``[minimum, maximum]``."""
    def check(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError(f"must be a whole number, got {raw!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            upper = "" if maximum is None else f" to {maximum}"
            span = f"from {minimum}{upper}" if maximum is not None else f">= {minimum}"
            raise ValueError(f"must be {span}, got {value}")
        return value
    return check


#: A TCP port, 1-65535.
port = integer(1, 65535)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def boolean(raw: str) -> bool:
    """1/0, true/false, yes/no, on/off."""
    word = raw.strip().lower()
    if word in _TRUE | _FALSE:
        return word in _TRUE
    raise ValueError(f"must be true or false (1/0, yes/no, on/off), got {raw!r}")


def text(raw: str) -> str:
    """Any text."""
    return raw


def choice(*options: str) -> Check:
    """One of ``options`` (case-insensitive)."""
    def check(raw: str) -> str:
        if raw.strip().lower() not in {o.lower() for o in options}:
            raise ValueError(f"must be one of {', '.join(options)}, got {raw!r}")
        return raw.strip()
    return check


def url(*schemes: str) -> Check:
    """A URL with one of ``schemes`` and a host (or a path for ``sqlite``)."""
    def check(raw: str) -> str:
        parts = urlsplit(raw.strip())
        if parts.scheme not in schemes:
            raise ValueError(f"must be a URL starting with {' or '.join(s + '://' for s in schemes)}"
                             f", got {mask_url(raw)!r}")
        if parts.scheme != "sqlite" and not parts.hostname and not parts.path:
            raise ValueError(f"has no host: {mask_url(raw)!r}")
        try:
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise ValueError(f"has a bad port: {mask_url(raw)!r}") from None
        return raw
    return check


def redis_url(raw: str) -> str:
    """A ``redis://`` or ``rediss://`` URL whose database is a number."""
    url("redis", "rediss", "unix")(raw)
    db = urlsplit(raw).path.strip("/")
    if db and not db.isdigit():
        raise ValueError(f"names database {db!r}; it must be a number: {mask_url(raw)!r}")
    return raw


def database_url(raw: str) -> str:
    """A URL dj-database-url understands."""
    import dj_database_url

    url("sqlite", "postgres", "postgresql", "pgsql", "postgis", "mysql", "mariadb")(raw)
    try:
        dj_database_url.parse(raw)
    except ValueError as exc:
        raise ValueError(f"cannot be used: {exc}") from None
    return raw


def mount_path(raw: str) -> str:
    """A URL path such as ``/`` or ``/myapp``."""
    if any(c in raw for c in "?#% ") or "//" in raw.strip("/"):
        raise ValueError(f"must be a plain URL path such as /myapp, got {raw!r}")
    return raw


def networks(raw: str) -> list[str]:
    """Comma-separated addresses or networks (``127.0.0.1``, ``10.0.0.0/8``)."""
    items = [i.strip() for i in raw.split(",") if i.strip()]
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"holds {item!r}, which is not an address or network") from None
    return items


def words(raw: str) -> list[str]:
    """A comma-separated list."""
    return [i.strip() for i in raw.split(",") if i.strip()]


def origins(raw: str) -> list[str]:
    """Comma-separated ``scheme://host[:port]`` origins."""
    items = words(raw)
    for item in items:
        parts = urlsplit(item)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"holds {item!r}; an origin looks like https://peers.example.com")
    return items


def turn_urls(raw: str) -> list[str]:
    """Comma-separated ``turn:`` / ``turns:`` / ``stun:`` URLs."""
    items = words(raw)
    for item in items:
        if item.split(":", 1)[0] not in ("turn", "turns", "stun", "stuns") or ":" not in item:
            raise ValueError(f"holds {item!r}; expected turn:host:port or turns:host:port")
    return items


def log_level(raw: str) -> str:
    """A logging level name."""
    return str(choice("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")(raw.upper()))


def mask_url(raw: str) -> str:
    """``raw`` with any password replaced by ``***``."""
    parts = urlsplit(raw)
    if parts.password is None:
        return raw
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


# --- the table ----------------------------------------------------------------------

S = Setting
SETTINGS: tuple[Setting, ...] = (
    S("HOST", "0.0.0.0", "address to listen on", text),
    S("PORT", "9000", "TCP port to listen on (1-65535)", port),
    S("PEERHUB_PATH", "/", "mount path: HTTP routes under it, websocket at {path}peerjs",
      mount_path),
    S("EXPIRE_TIMEOUT", "5000", "ms a message waits for an offline destination before "
      "the sender gets EXPIRE", integer(1)),
    S("CLEANUP_INTERVAL", "1000", "ms between offline-queue expiry sweeps", integer(10)),
    S("ALIVE_TIMEOUT", "60000", "ms after which a silent socket is closed and its id freed",
      integer(100)),
    S("CONCURRENT_LIMIT", "5000", "most peers registered at once on this server",
      integer(1)),
    S("ALLOW_DISCOVERY", "false", "serve GET {path}{key}/peers for every key", boolean),
    S("MAX_MESSAGE_SIZE", "65536", "bytes; a larger frame gets ERROR and close 1009",
      integer(1024)),
    S("QUEUE_LIMIT", "100", "messages kept per offline destination", integer(0)),
    S("RATE_LIMIT", "1000", "messages per second per peer", integer(1)),
    S("RATE_BURST", "5000", "burst of messages per peer above RATE_LIMIT", integer(1)),
    S("MAX_SOCKETS_PER_IP", "20000", "open connections (HTTP and websocket) from one "
      "client address", integer(1)),
    S("CONNECT_RATE", "1000", "new connections per second from one address", integer(1)),
    S("CONNECT_BURST", "10000", "burst of new connections from one address", integer(1)),
    S("SENDER_QUEUE_LIMIT", "1000", "messages one peer may have waiting for offline peers",
      integer(0)),
    S("SEND_BUFFER_LIMIT", "2097152", "bytes waiting for a peer that does not read",
      integer(16384)),
    S("TURN_URLS", "", "comma-separated TURN servers for GET {path}{key}/ice", turn_urls),
    S("TURN_SECRET", "", "coturn's static-auth-secret", text, secret=True),
    S("TURN_TTL", "86400", "seconds a TURN credential is valid", integer(60)),
    S("LISTEN_BACKLOG", "4096", "TCP listen backlog", integer(1, 65535)),
    S("WORKERS", "1", "processes sharing the port (needs REDIS_URL)", integer(1, 256)),
    S("REUSE_PORT", "false", "let several processes listen on PORT", boolean),
    S("HANDSHAKE_TIMEOUT", "20", "seconds a connection may take to send a request head "
      "(not restarted by bytes; then 408)", integer(1)),
    S("BODY_TIMEOUT", "20", "seconds from a request head's end to its body's end "
      "(then 408)", integer(1)),
    S("KEEPALIVE_TIMEOUT", "5", "seconds a kept-alive HTTP connection may wait idle",
      integer(1)),
    S("MAX_HEAD_SIZE", "16384", "bytes of one request head (then 431)", integer(1024)),
    S("MAX_BODY_SIZE", "1048576", "bytes of one request body (then 413)", integer(1024)),
    S("TLS_CERT_FILE", "", "PEM certificate (chain): TLS on the public port", text),
    S("TLS_KEY_FILE", "", "PEM private key for TLS_CERT_FILE", text),
    S("ADMIN_HOST", "127.0.0.1", "address of the admin listener (with ADMIN_PORT)", text),
    S("ADMIN_PORT", "0", "a listener serving only Django and /metrics (0: none)",
      integer(0, 65535)),
    S("ADMIN_ON_PUBLIC_PORT", "true", "false: /admin/ and /dashboard/ are 404 on PORT",
      boolean),
    S("UVLOOP", "true", "run the event loop on uvloop", boolean),
    S("DAPHNE_VERBOSITY", "1", "0 turns the access log off", integer(0, 3)),
    S("KEY_CACHE_SECONDS", "2", "how long a key's settings are cached per process",
      integer(0)),
    S("KEY_WATCH_INTERVAL", "1500 (30000 with REDIS_URL)", "ms between checks that close "
      "deactivated keys' peers", integer(100)),
    S("DRAIN_WINDOW", "10 with REDIS_URL, else 0", "seconds a SIGTERM'd node takes to "
      "close its peers, spread evenly", integer(0, 3600)),
    S("CONTROL_RECONCILE_INTERVAL", "30000", "ms between a node's reloads of the bans and "
      "re-checks of its keys (control plane catch-up)", integer(100)),
    S("PEERHUB_DEFAULT_KEY", "peerjs", "the key `make run` makes sure exists", text),
    S("DATABASE_URL", "sqlite in PEERHUB_VAR_DIR", "the database, e.g. "
      "postgres://user@127.0.0.1:5432/peerhub", database_url, secret=True),
    S("DATABASE_CONN_MAX_AGE", "0", "seconds a database connection is kept", integer(0)),
    S("REDIS_URL", "", "Redis for cluster mode, e.g. redis://127.0.0.1:6379/0", redis_url,
      secret=True),
    S("REDIS_PREFIX", "peerhub", "prefix of this cluster's Redis keys and channels", text),
    S("PROXY_HEADERS", "false", "trust X-Forwarded-For/-Proto from a proxy on loopback",
      boolean),
    S("TRUSTED_PROXIES", "", "comma-separated addresses or networks of the proxies in "
      "front (implies proxy headers)", networks),
    S("NODE_NAME", "hostname:PORT", "this process's name in sessions, logs and metrics",
      text),
    S("SECRET_KEY", "random, kept in PEERHUB_VAR_DIR", "Django's secret", text, secret=True),
    S("SECRET_KEY_FALLBACKS", "", "previous SECRET_KEYs, read while rotating", words,
      secret=True),
    S("LOGIN_FAILURE_LIMIT", "5", "failed admin logins per address and per user name "
      "before 429", integer(1)),
    S("LOGIN_FAILURE_WINDOW", "900", "seconds failed logins are counted over",
      integer(1)),
    S("DEBUG", "false", "Django debug mode", boolean),
    S("ALLOWED_HOSTS", "*", "comma-separated host names Django accepts", words),
    S("CSRF_TRUSTED_ORIGINS", "", "comma-separated origins for the admin behind a proxy",
      origins),
    S("SECURE_SSL_REDIRECT", "false", "redirect http to https", boolean),
    S("SECURE_COOKIES", "false", "session and CSRF cookies over https only", boolean),
    S("SECURE_HSTS_SECONDS", "0", "Strict-Transport-Security max-age", integer(0)),
    S("SECURE_HSTS_INCLUDE_SUBDOMAINS", "false", "HSTS includeSubDomains", boolean),
    S("SECURE_HSTS_PRELOAD", "false", "HSTS preload", boolean),
    S("STATIC_URL", "/static/", "URL prefix of the admin's static files", text),
    S("PEERHUB_VAR_DIR", "var/", "where the SQLite file and the generated secret live", text),
    S("LOG_LEVEL", "INFO", "root log level", log_level),
    S("LOG_FORMAT", "plain", "plain, or json: one JSON object per line", choice("plain", "json")),
    S("METRICS_ALLOW", "127.0.0.1/32,::1/128", "addresses and networks that may scrape "
      "/metrics", networks),
    S("SESSION_RETENTION_DAYS", "0", "days peer sessions are kept; older ones are pruned "
      "hourly (0: kept forever)", integer(0, 36500)),
)
BY_NAME = {s.name: s for s in SETTINGS}


def validate(environ: Mapping[str, str]) -> None:
    """Check every variable of the table that is set; raise :class:`BadSetting`."""
    for setting in SETTINGS:
        raw = environ.get(setting.name, "")
        if raw == "":
            continue
        try:
            setting.check(raw)
        except ValueError as exc:
            raise BadSetting(setting.name, str(exc)) from None


def effective(environ: Mapping[str, str]) -> list[tuple[str, str]]:
    """Each setting's value in effect (defaults where unset), secrets masked."""
    shown = []
    for s in SETTINGS:
        raw = environ.get(s.name, "")
        if raw == "":
            shown.append((s.name, s.default or "(unset)"))
        elif s.name.endswith("_URL") and s.secret:
            shown.append((s.name, mask_url(raw)))
        elif s.secret:
            shown.append((s.name, "***"))
        else:
            shown.append((s.name, raw))
    return shown


def effective_line(environ: Mapping[str, str]) -> str:
    """The one start-up line naming every setting in effect."""
    from peerhub import __version__

    pairs = " ".join(f"{k}={_quote(v)}" for k, v in effective(environ))
    return f"peerhub {__version__}: settings {pairs}"


def _quote(value: str) -> str:
    return repr(value) if (" " in value or value == "") else value


def help_text() -> str:
    """``--help``: usage and every setting with its default and meaning."""
    width = max(len(s.name) for s in SETTINGS)
    lines = ["usage: python -m peerhub.serve [--help] [--version]", "",
             "Serve peerhub (a PeerJS PeerServer). Every setting comes from the environment:",
             ""]
    for s in SETTINGS:
        default = f" (default: {s.default})" if s.default else ""
        lines.append(f"  {s.name.ljust(width)}  {s.meaning}{default}")
    return "\n".join(lines)


def markdown_rows(names: Iterable[str] | None = None) -> str:
    """The settings as README table rows (``| variable | default | meaning |``)."""
    chosen = [BY_NAME[n] for n in names] if names is not None else SETTINGS
    return "\n".join(f"| `{s.name}` | {f'`{s.default}`' if s.default else 'unset'} | "
                     f"{s.meaning} |" for s in chosen)


# --- services -----------------------------------------------------------------------

def check_database() -> None:
    """Open (and close) one connection to the configured database."""
    import django
    from django.db import DatabaseError, connections

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peerhub.settings")
    django.setup()
    conn = connections["default"]
    try:
        conn.ensure_connection()
    except DatabaseError as exc:
        raise BadSetting("DATABASE_URL", f"cannot be reached: {_first_line(exc)}") from None
    finally:
        conn.close()


def check_redis(raw: str) -> None:
    """PING the Redis of ``raw`` (which also selects its database)."""
    import redis
    from redis.exceptions import RedisError

    try:
        client = redis.Redis.from_url(raw, socket_timeout=3, socket_connect_timeout=3)
        try:
            client.ping()
        finally:
            client.close()
    except (RedisError, OSError, ValueError) as exc:
        raise BadSetting("REDIS_URL", f"cannot be used ({mask_url(raw)}): "
                                      f"{_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def check_services(environ: Mapping[str, str]) -> None:
    """Reach the database and, in cluster mode, Redis."""
    if environ.get("REDIS_URL"):
        check_redis(environ["REDIS_URL"])
    check_database()


# --- the entry point ----------------------------------------------------------------

def prepare(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> None:
    """Answer ``--help``/``--version``, or check everything and print the settings line.

    Exits the process: 0 after ``--help``/``--version``, 2 on a bad setting or argument.
    """
    from peerhub import __version__

    env = os.environ if environ is None else environ
    args = list(argv)
    if any(a in ("-h", "--help") for a in args):
        print(help_text())
        sys.exit(0)
    if "--version" in args:
        print(f"peerhub {__version__}")
        sys.exit(0)
    if args:
        _fail(f"unknown argument {args[0]!r} (try --help)")
    from peerhub.env import ImproperEnvironment

    try:
        validate(env)
        check_services(env)
    except (BadSetting, ImproperEnvironment) as exc:  # the latter: a setting not in the table
        _fail(str(exc))
    print(effective_line(env), flush=True)


def _fail(message: str) -> None:
    print(f"peerhub: {message}", file=sys.stderr, flush=True)
    sys.exit(EXIT_BAD_SETTING)
