"""Pure PeerJS signalling helpers: message types, id rules, URLs, payload builders."""

from __future__ import annotations

import random
import re
import string
from enum import StrEnum
from typing import Any
from urllib.parse import quote, urlencode

__all__ = [
    "CLIENT_VERSION",
    "MessageType",
    "http_url",
    "is_valid_id",
    "new_connection_id",
    "new_token",
    "message",
    "normalize_path",
    "ws_url",
]

CLIENT_VERSION = "1.5.5"
_ID_RE = re.compile(r"^[A-Za-z0-9]+(?:[ _-][A-Za-z0-9]+)*$")
_BASE36 = string.digits + string.ascii_lowercase
_rng = random.SystemRandom()


class MessageType(StrEnum):
    OPEN = "OPEN"
    LEAVE = "LEAVE"
    CANDIDATE = "CANDIDATE"
    OFFER = "OFFER"
    ANSWER = "ANSWER"
    EXPIRE = "EXPIRE"
    HEARTBEAT = "HEARTBEAT"
    ID_TAKEN = "ID-TAKEN"
    INVALID_KEY = "INVALID-KEY"
    ERROR = "ERROR"


def is_valid_id(peer_id: str) -> bool:
    """PeerJS's client-side id rule (empty means "ask the server")."""
    return not peer_id or bool(_ID_RE.match(peer_id))


def _base36(length: int) -> str:
    return "".join(_rng.choice(_BASE36) for _ in range(length))


def new_token() -> str:
    """A random token like PeerJS's ``Math.random().toString(36).slice(2)``."""
    return _base36(11)


def new_connection_id(kind: str) -> str:
    """``dc_…`` for data, ``mc_…`` for media."""
    return f"{kind}_{_base36(11)}"


def normalize_path(path: str) -> str:
    """Make ``path`` begin and end with ``/``."""
    path = path or "/"
    if not path.startswith("/"):
        path = "/" + path
    if not path.endswith("/"):
        path += "/"
    return path


def _host_port(host: str, port: int) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


def ws_url(host: str, port: int, path: str, secure: bool, *, key: str, id: str, token: str) -> str:
    """``ws(s)://host:port{path}peerjs?key=&id=&token=&version=`` with encoded values."""
    query = urlencode({"key": key, "id": id, "token": token, "version": CLIENT_VERSION})
    scheme = "wss" if secure else "ws"
    return f"{scheme}://{_host_port(host, port)}{normalize_path(path)}peerjs?{query}"


def http_url(host: str, port: int, path: str, secure: bool, *, key: str, method: str) -> str:
    """``http(s)://host:port{path}{key}/{method}?ts=…&version=…``."""
    query = urlencode({"ts": f"{_rng.random()}", "version": CLIENT_VERSION})
    scheme = "https" if secure else "http"
    base = f"{scheme}://{_host_port(host, port)}{normalize_path(path)}"
    return f"{base}{_quote_segment(key)}/{method}?{query}"


def _quote_segment(text: str) -> str:
    return quote(text, safe="")


def message(type: MessageType, dst: str | None = None, payload: Any = None) -> dict[str, Any]:
    """A signalling message as PeerJS sends it (``type``, ``payload``, ``dst``)."""
    msg: dict[str, Any] = {"type": type.value}
    if payload is not None:
        msg["payload"] = payload
    if dst is not None:
        msg["dst"] = dst
    return msg
