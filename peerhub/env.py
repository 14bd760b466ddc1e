"""Typed helpers that read settings from the environment.

Every setting of peerhub comes through these few functions, so a wrong value fails loudly
at start-up with the variable's name instead of misbehaving later.
"""

from __future__ import annotations

import os
import socket


class ImproperEnvironment(ValueError):
    """An environment variable holds a value of the wrong kind."""


def env_str(name: str, default: str) -> str:
    """Return the variable as text, or ``default`` when it is unset or empty."""
    value = os.environ.get(name, "")
    return value if value != "" else default


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    """Return the variable as an integer no smaller than ``minimum``."""
    raw = os.environ.get(name, "")
    if raw == "":
        return default
    text = raw.strip()
    digits = text[1:] if text[:1] == "-" else text
    # ASCII digits only: int() also takes other scripts' digits ("\u0661\u0662" is 12).
    if not (digits.isascii() and digits.isdigit()):
        raise ImproperEnvironment(f"{name} must be an integer, got {raw!r}")
    value = int(text)
    if value < minimum:
        raise ImproperEnvironment(f"{name} must be >= {minimum}, got {value}")
    return value


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_bool(name: str, default: bool) -> bool:
    """Return the variable as a boolean (1/0, true/false, yes/no, on/off)."""
    raw = os.environ.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ImproperEnvironment(f"{name} must be a boolean, got {raw!r}")


def env_list(name: str, default: list[str]) -> list[str]:
    """Return the variable as a comma-separated list with blanks removed."""
    raw = os.environ.get(name, "")
    if raw.strip() == "":
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def normalise_mount_path(path: str) -> str:
    """Return ``path`` beginning and ending with one slash, as PeerJS clients expect."""
    inner = path.strip().strip("/")
    return "/" if inner == "" else f"/{inner}/"


def node_name() -> str:
    """This process's name in session rows and logs: ``NODE_NAME`` or ``host:PORT``."""
    return os.environ.get("NODE_NAME") or f"{socket.gethostname()}:{env_str('PORT', '9000')}"
