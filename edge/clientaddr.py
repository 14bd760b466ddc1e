"""The client's address and scheme for a request: the one place the edge reads proxy
headers, through :mod:`peerhub.proxy` (``TRUSTED_PROXIES``)."""

from __future__ import annotations

from collections.abc import Iterable

from peerhub import proxy


def client_address(peer: tuple[str, int], headers: Iterable[tuple[bytes, bytes]],
                   trusted: proxy.TrustedProxies | None
                   ) -> tuple[tuple[str, int], str | None]:
    """``(address, port)`` of the client and the scheme a trusted proxy reported (or None).

    From a trusted proxy the address is the first untrusted hop of ``X-Forwarded-For``
    (its port is then unknown: 0); from anyone else, the socket's peer. Raises
    :class:`peerhub.proxy.BadProxyHeader` for proxy headers that cannot be read.
    """
    if trusted is None:
        return peer, None
    address, scheme = proxy.from_headers(peer[0], headers, trusted)
    return (peer if address == peer[0] else (address, 0)), scheme


def counts_per_socket(peer: str, trusted: proxy.TrustedProxies | None) -> bool:
    """Whether connections from ``peer`` are counted per address at the accept: not those
    of a trusted proxy, which carry many clients (their own guards count those)."""
    return trusted is None or not trusted.trusts(proxy.parse_address(peer))
