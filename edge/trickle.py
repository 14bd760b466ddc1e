"""Waking a websocket's reader only when the frame it waits for can be finished.

A client that trickles a frame in tiny writes (a slow-drip sender) would otherwise wake
the server once per TCP segment: 26,216 reads for a 256 KiB message in 10-byte writes.
On Linux, ``SO_RCVLOWAT`` tells the kernel to signal a socket readable only once that
many bytes are queued (or the connection ends, or its receive buffer is under pressure),
so while a frame is unfinished the edge sets it to the bytes the frame still lacks,
capped at :data:`LOWAT_CAP`, and back to 1 once the frame is whole. An honest client
that writes each frame at once never meets it, and a frame that arrives slowly is
delivered the moment its last byte is there (no hold). Where it is unavailable (TLS,
where the socket's bytes are not the frame's, or another system) the edge falls back to
reading a trickling socket at most every ``DRIP_PAUSE`` seconds
(:mod:`edge.websocket`).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys

logger = logging.getLogger(__name__)

#: The most bytes the kernel is asked to hold before waking the reader: a frame larger
#: than this is read in pieces of about this size. Below the default receive buffer
#: (``net.ipv4.tcp_rmem``, 128 KiB), so that setting it never makes the kernel grow it.
LOWAT_CAP = 65536
#: ``SO_RCVLOWAT`` of a socket that wakes for every byte (the kernel's default).
EVERY_BYTE = 1


def wake_threshold(missing: int, cap: int = LOWAT_CAP) -> int:
    """Bytes to queue before waking the reader of a socket whose frame in progress
    still lacks ``missing`` bytes (0: no frame in progress): at most ``cap``."""
    return min(missing, cap) if missing > EVERY_BYTE else EVERY_BYTE


def low_water_socket(transport: asyncio.Transport) -> socket.socket | None:
    """The socket whose ``SO_RCVLOWAT`` can be set for ``transport``, or None (not
    Linux, TLS, or no socket)."""
    if sys.platform != "linux" or transport.get_extra_info("sslcontext") is not None:
        return None
    sock = transport.get_extra_info("socket")
    if sock is None or sock.type != socket.SOCK_STREAM:
        return None
    return sock


def set_low_water(sock: socket.socket, level: int) -> bool:
    """Set ``sock``'s ``SO_RCVLOWAT`` to ``level``; tell whether the kernel took it."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, level)
    except OSError as exc:  # closed meanwhile, or a kernel without it
        logger.debug("SO_RCVLOWAT %d refused: %s", level, exc)
        return False
    return True
