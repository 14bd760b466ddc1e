"""Two SCTP habits of browsers that aiortc 1.16 lacks, added per transport.

**Bundling** (RFC 9260 §6.10): the DATA chunks of one loop iteration share packets.

aiortc 1.16 sends every SCTP chunk in a packet of its own ("no bundling for now" in
``RTCSctpTransport._send_chunk``), so each small message costs a DTLS record, a UDP
datagram and, on the other side, a SACK. Browsers bundle (RFC 9260 §6.10). Here the
DATA chunks that one event-loop iteration hands to a transport are collected and sent
back to back in as few packets as fit: a packet carries at most the chunk bytes of one
full-size chunk, so no packet is larger than those aiortc sends anyway. Any other
chunk (INIT, SACK, FORWARD-TSN, …) first flushes what is pending, then goes alone, as
before: the order on the wire is unchanged.

**Delayed SACK** (RFC 9260 §6.2): aiortc acknowledges every packet it receives, and
its sender runs its whole transmit pass (a walk over every chunk in flight) for each
SACK, so acknowledgements are the sender's main cost for large messages. Here a SACK
goes for every second packet, or ``SACK_DELAY`` after a lone one, and at once when
something arrived out of order or twice (the cases the RFC says not to delay).

The seams are two per-connection methods (``_send_chunk``, ``_send_sack``), replaced
on the transport instance: no class or module of aiortc is changed, and the originals
still build and send every packet. docs/decisions.md has the figures.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc.rtcsctptransport import USERDATA_MAX_LENGTH, DataChunk, RTCSctpTransport

__all__ = ["MAX_BUNDLE_BYTES", "SACK_DELAY", "ChunkBundle", "install_bundling", "tune"]

log = logging.getLogger(__name__)

DATA_CHUNK_HEADER = 16
MAX_BUNDLE_BYTES = USERDATA_MAX_LENGTH + DATA_CHUNK_HEADER
SMALLEST_DATA_CHUNK = DATA_CHUNK_HEADER + 4
SACK_DELAY = 0.02  # seconds; the RFC allows up to 0.2
_MARK = "_peerhub_tuned"


class ChunkBundle:
    """Several DATA chunks serialized back to back, each padded: one packet's body."""

    def __init__(self, chunks: list[Any]) -> None:
        self.chunks = chunks

    def __bytes__(self) -> bytes:
        return b"".join(bytes(chunk) for chunk in self.chunks)

    def __repr__(self) -> str:
        return f"ChunkBundle({len(self.chunks)} DATA chunks)"


def _wire_size(chunk: Any) -> int:
    size = DATA_CHUNK_HEADER + len(chunk.user_data)
    return size + (-size % 4)


class _Bundler:
    """Pending DATA chunks of one transport, flushed at the end of the loop iteration."""

    def __init__(self, send_one: Callable[[Any], Awaitable[None]]) -> None:
        self._send_one = send_one
        self._pending: list[Any] = []
        self._size = 0
        self._flush_task: asyncio.Task[None] | None = None

    async def send_chunk(self, chunk: Any) -> None:
        if not isinstance(chunk, DataChunk):
            await self.flush()
            await self._send_one(chunk)
            return
        size = _wire_size(chunk)
        if self._pending and self._size + size > MAX_BUNDLE_BYTES:
            await self.flush()
        if size + SMALLEST_DATA_CHUNK > MAX_BUNDLE_BYTES:
            await self._send_one(chunk)  # a (nearly) full chunk: nothing fits beside it
            return
        self._pending.append(chunk)
        self._size += size
        if self._flush_task is None:
            self._flush_task = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        try:
            await self.flush()
        finally:
            self._flush_task = None

    async def flush(self) -> None:
        if not self._pending:
            return
        chunks, self._pending, self._size = self._pending, [], 0
        await self._send_one(chunks[0] if len(chunks) == 1 else ChunkBundle(chunks))


class _DelayedSack:
    """Every second SACK goes at once; a lone one after ``SACK_DELAY``."""

    def __init__(self, transport: RTCSctpTransport) -> None:
        self._transport = transport
        self._send_now = transport._send_sack
        self._owed = False
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def send_sack(self) -> None:
        t = self._transport
        if self._owed or t._sack_misordered or t._sack_duplicates:
            await self._send()
            return
        self._owed = True
        self._timer = asyncio.get_running_loop().call_later(SACK_DELAY, self._late)

    async def _send(self) -> None:
        self._owed = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self._send_now()

    def _late(self) -> None:
        self._timer = None
        if self._owed and self._transport._sack_needed:
            task = asyncio.get_running_loop().create_task(self._send())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self._owed = False


def install_bundling(transport: RTCSctpTransport) -> None:
    """Make ``transport`` bundle its DATA chunks."""
    bundler = _Bundler(transport._send_chunk)
    transport._send_chunk = bundler.send_chunk  # type: ignore[method-assign]


def tune(transport: RTCSctpTransport) -> None:
    """Bundling and delayed SACKs on ``transport`` (once; later calls do nothing)."""
    if getattr(transport, _MARK, False):
        return
    setattr(transport, _MARK, True)
    install_bundling(transport)
    transport._send_sack = _DelayedSack(transport).send_sack  # type: ignore[method-assign]
