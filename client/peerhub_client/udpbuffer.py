"""The UDP receive buffer of the sockets aioice opens for each peer connection.

aioice sets ``SO_RCVBUF`` on every host-candidate socket to the module constant
``aioice.turn.UDP_SOCKET_BUFFER_SIZE`` (256 KiB in 0.13), which it reads each time it
gathers candidates. A burst of small SCTP packets overflows 256 KiB: the kernel drops
datagrams (``RcvbufErrors`` in ``/proc/net/snmp``), SCTP retransmits after a timeout
and small messages crawl (docs/decisions.md has the figures). aioice has no option
for it, so this module raises that constant before a connection gathers: the
narrowest seam, one documented name. The value is process-wide; it is only ever
raised, never lowered. Linux caps it at ``net.core.rmem_max``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from aioice import turn

__all__ = ["DEFAULT_UDP_RECEIVE_BUFFER", "raise_udp_receive_buffer", "rmem_max"]

log = logging.getLogger(__name__)

DEFAULT_UDP_RECEIVE_BUFFER = 4 * 1024 * 1024
RMEM_MAX = Path("/proc/sys/net/core/rmem_max")


def rmem_max() -> int | None:
    """The kernel's cap on ``SO_RCVBUF`` (None where it cannot be read)."""
    try:
        return int(RMEM_MAX.read_text().strip())
    except (OSError, ValueError):
        return None


def raise_udp_receive_buffer(size: int) -> int:
    """Make sockets gathered from now on ask for at least ``size`` bytes; return the value."""
    current = int(turn.UDP_SOCKET_BUFFER_SIZE)
    if size > current:
        turn.UDP_SOCKET_BUFFER_SIZE = size
        cap = rmem_max()
        if cap is not None and cap < size:
            log.warning(
                "UDP receive buffer of %d bytes asked, the kernel allows %d "
                "(raise net.core.rmem_max for small-message speed)", size, cap,
            )  # fmt: skip
    return int(turn.UDP_SOCKET_BUFFER_SIZE)
