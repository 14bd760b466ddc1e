"""The PeerServer's HTTP API: ``GET {path}{key}/id``."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

from .protocol import http_url

__all__ = ["IdRequestFailed", "fetch_id"]

TIMEOUT = 10.0


class IdRequestFailed(ConnectionError):
    """The server did not hand out an id."""


async def fetch_id(host: str, port: int, path: str, secure: bool, key: str) -> str:
    """Ask the server for a fresh peer id."""
    url = http_url(host, port, path, secure, key=key, method="id")
    return await asyncio.to_thread(_get_text, url)


def _get_text(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:  # noqa: S310
            body: bytes = response.read(4096)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise IdRequestFailed(f"GET {url.split('?')[0]} failed: {exc}") from exc
    text = body.decode("utf-8", "replace").strip()
    if not text:
        raise IdRequestFailed("the server returned an empty id")
    return text
