"""The client's address and scheme for a request: the one place that reads proxy headers.

(The integrity helper's ``peerhub/proxy.py`` with TRUSTED_PROXIES replaces the body of
:func:`client_address` on merge; every caller goes through it.)
"""

from __future__ import annotations

from collections.abc import Iterable


def client_address(peer: tuple[str, int], headers: Iterable[tuple[bytes, bytes]],
                   trust_proxy: bool) -> tuple[tuple[str, int], str | None]:
    """``(address, port)`` of the client and the scheme a proxy says it used (or None).

    With ``trust_proxy`` the leftmost ``X-Forwarded-For`` address, ``X-Forwarded-Port``
    and ``X-Forwarded-Proto`` replace what the socket says; otherwise the socket's peer.
    """
    if not trust_proxy:
        return peer, None
    host, port, scheme = peer[0], peer[1], None
    for name, value in headers:
        if name == b"x-forwarded-for":
            first = value.split(b",")[0].strip().decode("latin-1")
            if first:
                host = first
        elif name == b"x-forwarded-port":
            if value.strip().isdigit():
                port = int(value.strip())
        elif name == b"x-forwarded-proto":
            scheme = value.split(b",")[0].strip().decode("latin-1").lower() or None
    return (host, port), scheme
