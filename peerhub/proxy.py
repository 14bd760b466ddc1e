"""The client's address behind reverse proxies: pure functions over header values.

A proxy appends the address it received a request from to ``X-Forwarded-For``, so the
header's right end is what trusted hops wrote and its left end is whatever the client
sent. The client is therefore the first address that is *not* a trusted proxy, walking
from the right (the socket's peer address first). Nothing a client writes can move that
point: it can only add entries to the left of it, which are never read.

Which hops are trusted comes from ``TRUSTED_PROXIES`` (comma-separated addresses or
CIDR networks). ``PROXY_HEADERS=true`` with no ``TRUSTED_PROXIES`` trusts loopback only
(a proxy on the same machine, as in deploy/nginx-peerhub.conf). With neither, proxy
headers are ignored and the socket's peer address is the client.

``X-Real-IP`` (one address) is read only when a trusted peer sent no
``X-Forwarded-For``; ``X-Forwarded-Proto`` only from a trusted peer.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from peerhub.env import ImproperEnvironment, env_bool, env_str

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

LOOPBACK = "127.0.0.0/8,::1/128"
#: An ``X-Forwarded-For`` longer than this (all its lines together) is refused.
MAX_HEADER_LENGTH = 4096


class BadProxyHeader(ValueError):
    """A trusted peer sent an ``X-Forwarded-For``/``X-Real-IP`` that cannot be read:
    not ASCII, an entry that is not an address, or too long. Answer 400."""


@dataclass(frozen=True, slots=True)
class TrustedProxies:
    """The networks whose hops may tell the client's address."""

    networks: tuple[Network, ...]

    def trusts(self, address: Address | None) -> bool:
        """Tell whether ``address`` is one of the trusted proxies."""
        if address is None:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in net for net in self.networks if net.version == address.version)


def parse_trusted(text: str) -> TrustedProxies:
    """``"10.0.0.1, 192.168.0.0/16, ::1"`` -> :class:`TrustedProxies`; raise ValueError."""
    networks = []
    for item in text.split(","):
        item = item.strip()
        if item:
            networks.append(ipaddress.ip_network(item, strict=False))
    return TrustedProxies(tuple(networks))


def trusted_from_env() -> TrustedProxies | None:
    """The trusted proxies from ``TRUSTED_PROXIES``/``PROXY_HEADERS``; None: no proxy."""
    text = env_str("TRUSTED_PROXIES", "")
    if not text:
        return parse_trusted(LOOPBACK) if env_bool("PROXY_HEADERS", False) else None
    try:
        return parse_trusted(text)
    except ValueError as exc:
        raise ImproperEnvironment(f"TRUSTED_PROXIES: {exc}") from exc


def parse_address(text: str) -> Address | None:
    """An address as proxies write it (``1.2.3.4``, ``1.2.3.4:5678``, ``::1``,
    ``[::1]:5678``), or None if it is not one."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _header_text(values: Iterable[bytes]) -> str:
    """Several header lines as one comma-separated value; raise :class:`BadProxyHeader`."""
    joined = b",".join(values)
    if len(joined) > MAX_HEADER_LENGTH:
        raise BadProxyHeader("X-Forwarded-For is too long")
    try:
        return joined.decode("ascii")
    except UnicodeDecodeError as exc:
        raise BadProxyHeader("X-Forwarded-For holds bytes that are not ASCII") from exc


def client_address(peer: str, forwarded_for: Iterable[bytes], real_ip: Iterable[bytes],
                   trusted: TrustedProxies | None) -> str:
    """The client's address for a request from socket peer ``peer``.

    ``forwarded_for`` and ``real_ip`` are the raw values of every ``X-Forwarded-For``
    and ``X-Real-IP`` line (in order). Raises :class:`BadProxyHeader` when a header
    that would be read cannot be.
    """
    if trusted is None or not trusted.trusts(parse_address(peer)):
        return peer
    chain = [e for e in _header_text(forwarded_for).split(",") if e.strip()]
    if not chain:
        real = _header_text(real_ip).strip()
        if not real:
            return peer
        address = parse_address(real)
        if address is None:
            raise BadProxyHeader("X-Real-IP is not an address")
        return str(address)
    for entry in reversed(chain):
        address = parse_address(entry)
        if address is None:
            raise BadProxyHeader("X-Forwarded-For holds an entry that is not an address")
        if not trusted.trusts(address):
            return str(address)
    return str(parse_address(chain[0]))  # every hop is trusted: the first one asked


def forwarded_scheme(peer: str, forwarded_proto: Iterable[bytes],
                     trusted: TrustedProxies | None) -> str | None:
    """``http``/``https`` from a trusted peer's ``X-Forwarded-Proto`` (its last hop's
    value), else None."""
    if trusted is None or not trusted.trusts(parse_address(peer)):
        return None
    values = b",".join(forwarded_proto).decode("latin-1").split(",")
    last = values[-1].strip().lower()
    return last if last in ("http", "https") else None


def from_headers(peer: str, headers: Iterable[tuple[bytes, bytes]],
                 trusted: TrustedProxies | None) -> tuple[str, str | None]:
    """``(client address, forwarded scheme or None)`` from ASGI-style header pairs
    (lower-case names); raise :class:`BadProxyHeader`."""
    if trusted is None:
        return peer, None
    xff: list[bytes] = []
    real: list[bytes] = []
    proto: list[bytes] = []
    for name, value in headers:
        if name == b"x-forwarded-for":
            xff.append(bytes(value))
        elif name == b"x-real-ip":
            real.append(bytes(value))
        elif name == b"x-forwarded-proto":
            proto.append(bytes(value))
    return (client_address(peer, xff, real, trusted),
            forwarded_scheme(peer, proto, trusted))
