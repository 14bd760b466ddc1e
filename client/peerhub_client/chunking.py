"""Chunking of large BinaryPack messages, as PeerJS 1.5.x does it (protocol §4.2).

A packed message longer than ``CHUNK_MTU`` bytes is cut into slices, each sent as the
BinaryPack map ``{"__peerData": msg_id, "n": index, "data": slice, "total": count}``.
``Reassembler`` puts them back together in any arrival order, within memory limits.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .binarypack import pack
from .errors import SerializationError

__all__ = ["CHUNK_MTU", "ChunkError", "ChunkLimits", "Reassembler", "chunk_frames"]

CHUNK_MTU = 16300


class ChunkError(SerializationError):
    """A chunk is malformed, inconsistent, over a limit, or its set was never completed."""


@dataclass(frozen=True)
class ChunkLimits:
    """Bounds on what a remote peer can make us hold in memory."""

    max_message_bytes: int = 64 * 1024 * 1024
    max_pending_bytes: int = 64 * 1024 * 1024
    max_pending_messages: int = 64
    max_chunk_bytes: int = 64 * 1024
    timeout: float = 30.0


def chunk_frames(packed: bytes, msg_id: int, mtu: int = CHUNK_MTU) -> list[bytes]:
    """Split ``packed`` into BinaryPack chunk frames (key order as PeerJS sends it)."""
    total = math.ceil(len(packed) / mtu)
    return [
        pack(
            {"__peerData": msg_id, "n": n, "data": packed[n * mtu : (n + 1) * mtu], "total": total}
        )
        for n in range(total)
    ]


def is_chunk(message: Any) -> bool:
    """True when an unpacked message is a chunk (truthy ``__peerData``, not a control map)."""
    if not isinstance(message, dict):
        return False
    marker = message.get("__peerData")
    return bool(marker) and not isinstance(marker, dict)


@dataclass
class _Pending:
    total: int
    parts: dict[int, bytes] = field(default_factory=dict)
    size: int = 0
    touched: float = field(default_factory=time.monotonic)


class Reassembler:
    """Collects chunks per message id; returns the packed bytes once a set is complete."""

    def __init__(self, limits: ChunkLimits | None = None) -> None:
        self.limits = limits or ChunkLimits()
        self._pending: dict[Any, _Pending] = {}
        self._pending_bytes = 0

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    @property
    def pending_messages(self) -> int:
        return len(self._pending)

    def add(self, chunk: Mapping[str, Any]) -> bytes | None:
        """Store one chunk; return the whole packed message when its set is complete."""
        msg_id, n, data, total = _validate(chunk, self.limits)
        entry = self._entry(msg_id, total)
        if n in entry.parts:
            self._drop(msg_id)
            raise ChunkError(f"duplicate chunk {n} of message {msg_id!r}")
        self._store(msg_id, entry, n, data)
        if len(entry.parts) < entry.total:
            return None
        self._drop(msg_id)
        return b"".join(entry.parts[i] for i in range(entry.total))

    def expire(self, now: float | None = None) -> list[Any]:
        """Drop sets that saw no chunk for ``limits.timeout`` seconds; return their ids."""
        now = time.monotonic() if now is None else now
        stale = [key for key, p in self._pending.items() if now - p.touched >= self.limits.timeout]
        for key in stale:
            self._drop(key)
        return stale

    def clear(self) -> list[Any]:
        """Forget every incomplete set; return their ids."""
        ids = list(self._pending)
        for key in ids:
            self._drop(key)
        return ids

    def _entry(self, msg_id: Any, total: int) -> _Pending:
        entry = self._pending.get(msg_id)
        if entry is None:
            if len(self._pending) >= self.limits.max_pending_messages:
                raise ChunkError(
                    f"too many incomplete chunked messages (limit {self.limits.max_pending_messages})"
                )
            entry = self._pending[msg_id] = _Pending(total)
        elif entry.total != total:
            self._drop(msg_id)
            raise ChunkError(
                f"chunk total changed from {entry.total} to {total} in message {msg_id!r}"
            )
        return entry

    def _store(self, msg_id: Any, entry: _Pending, n: int, data: bytes) -> None:
        if entry.size + len(data) > self.limits.max_message_bytes:
            self._drop(msg_id)
            raise ChunkError(
                f"chunked message {msg_id!r} exceeds {self.limits.max_message_bytes} bytes"
            )
        if self._pending_bytes + len(data) > self.limits.max_pending_bytes:
            self._drop(msg_id)
            raise ChunkError(
                f"incomplete chunked messages exceed {self.limits.max_pending_bytes} bytes"
            )
        entry.parts[n] = data
        entry.size += len(data)
        entry.touched = time.monotonic()
        self._pending_bytes += len(data)

    def _drop(self, msg_id: Any) -> None:
        entry = self._pending.pop(msg_id, None)
        if entry is not None:
            self._pending_bytes -= entry.size


def _validate(chunk: Mapping[str, Any], limits: ChunkLimits) -> tuple[Any, int, bytes, int]:
    msg_id, n, data, total = (chunk.get(k) for k in ("__peerData", "n", "data", "total"))
    if not isinstance(total, int) or isinstance(total, bool) or total < 1:
        raise ChunkError(f"chunk has an invalid total: {total!r}")
    max_total = math.ceil(limits.max_message_bytes / CHUNK_MTU)
    if total > max_total:
        raise ChunkError(
            f"chunk total {total} exceeds the limit of {max_total} chunks "
            f"({limits.max_message_bytes} bytes)"
        )
    if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n < total:
        raise ChunkError(f"chunk index {n!r} is outside 0..{total - 1}")
    if not isinstance(data, bytes):
        raise ChunkError(f"chunk data must be binary, got {type(data).__name__}")
    if len(data) > limits.max_chunk_bytes:
        raise ChunkError(f"chunk of {len(data)} bytes exceeds {limits.max_chunk_bytes} bytes")
    if isinstance(msg_id, list | dict):
        raise ChunkError("chunk message id must be a scalar")
    return msg_id, n, data, total
