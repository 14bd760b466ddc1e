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

That leaves the kernel's work per TCP segment: on loopback each tiny segment stays an
skb of its own in the receive queue (a clone of the sender's, which Linux does not
coalesce into), and the reader's ``recv`` copies and frees each one. A frame whose
segments average under :data:`DRIP_SEGMENT` payload bytes (the socket's own TCP_INFO
counters, over at least :data:`DRIP_SEGMENTS` of them) is a drip, not a slow link:
the socket's receive buffer is then fixed at :data:`DRIP_RCVBUF` (bounding what the
kernel holds for it; autotuning had grown one to about 800 KB) and, while that frame is
unfinished, it is read at most every :data:`DRIP_HOLD` seconds. The kernel, finding the
buffer full meanwhile, collapses the queued tiny skbs into a few compact ones (or
withholds the window), so the reader gets a few skbs instead of one per write. An
honest client's segments are hundreds of bytes or more and never meet this.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import sys

logger = logging.getLogger(__name__)

#: The most bytes the kernel is asked to hold before waking the reader: a frame larger
#: than this is read in pieces of about this size. Below the default receive buffer
#: (``net.ipv4.tcp_rmem``, 128 KiB), so that setting it never makes the kernel grow it.
LOWAT_CAP = 65536
#: ``SO_RCVLOWAT`` of a socket that wakes for every byte (the kernel's default).
EVERY_BYTE = 1
#: A frame whose data segments average fewer payload bytes than this is dripped...
DRIP_SEGMENT = 128
#: ...once at least this many of them were counted (a header alone in a segment, as
#: clients that write a frame's header and payload apart send, is not a drip).
DRIP_SEGMENTS = 64
#: ``SO_RCVBUF`` of a dripping socket (Linux doubles it: 128 KiB, the default a socket
#: starts with). Twice :data:`LOWAT_CAP`, the most the kernel lets ``SO_RCVLOWAT`` be
#: for a socket whose buffer is fixed.
DRIP_RCVBUF = LOWAT_CAP
#: Seconds a dripping socket is left unread after a read that leaves its frame
#: unfinished (the frame is late by at most this after its last byte).
DRIP_HOLD = 0.5
#: Where ``tcpi_bytes_received`` (u64) and ``tcpi_data_segs_in`` (u32) sit in Linux's
#: ``struct tcp_info`` (both since 4.6), and the bytes to ask for.
_BYTES_RECEIVED, _DATA_SEGS_IN, _TCP_INFO_SIZE = 128, 152, 156


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


def received(sock: socket.socket) -> tuple[int, int] | None:
    """``(payload bytes, data segments)`` ``sock`` has received so far, or None where
    the kernel does not say."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_SIZE)
    except OSError:
        return None
    if len(info) < _TCP_INFO_SIZE:
        return None
    return (struct.unpack_from("=Q", info, _BYTES_RECEIVED)[0],
            struct.unpack_from("=I", info, _DATA_SEGS_IN)[0])


def dripped(since: tuple[int, int], now: tuple[int, int]) -> bool:
    """Whether the segments received between two :func:`received` readings are a drip:
    at least :data:`DRIP_SEGMENTS` of them, averaging under :data:`DRIP_SEGMENT` bytes."""
    size, segments = now[0] - since[0], (now[1] - since[1]) & 0xFFFFFFFF
    return segments >= DRIP_SEGMENTS and size < DRIP_SEGMENT * segments


def fix_buffer(sock: socket.socket, size: int = DRIP_RCVBUF) -> bool:
    """Fix ``sock``'s receive buffer at ``size`` (the kernel doubles it; autotuning
    stops for this socket); tell whether the kernel took it."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    except OSError as exc:
        logger.debug("SO_RCVBUF %d refused: %s", size, exc)
        return False
    return True
