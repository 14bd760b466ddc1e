"""BinaryPack: the MessagePack-like format PeerJS uses for ``binary`` connections.

Written from the format description in ``peerjs-protocol.md`` §4.1 (not MessagePack:
``a0-af`` is raw bytes, ``b0-bf`` is a string, ``d8/d9`` are str16/32, ``da/db`` raw16/32,
all big-endian). The encoder mirrors the JS encoder byte for byte for the values JS
can express; Python-only values follow the rules in ``pack``.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .errors import SerializationError

__all__ = ["BinaryPackError", "pack", "unpack"]

MAX_DEPTH = 100

_INT_RANGES: tuple[tuple[int, int, int, str], ...] = (
    (0, 0xFF, 0xCC, ">B"),
    (-0x80, 0x7F, 0xD0, ">b"),
    (0, 0xFFFF, 0xCD, ">H"),
    (-0x8000, 0x7FFF, 0xD1, ">h"),
    (0, 0xFFFFFFFF, 0xCE, ">I"),
    (-0x80000000, 0x7FFFFFFF, 0xD2, ">i"),
    (-(2**63), 2**63 - 1, 0xD3, ">q"),
    (0, 2**64 - 1, 0xCF, ">Q"),
)


class BinaryPackError(SerializationError):
    """Raised for values that cannot be packed and for malformed packed data."""


# --------------------------------------------------------------------------- encode


def pack(value: Any) -> bytes:
    """Encode ``value`` as BinaryPack.

    ``None`` -> nil, ``bool``, ``int`` (smallest JS range), ``float`` (integral finite
    floats are packed as integers, as JS does; others as float64), ``str``, bytes-like
    -> raw, ``list``/``tuple`` -> array, ``dict`` -> map. Anything else raises.
    """
    out = bytearray()
    _pack_into(out, value, 0)
    return bytes(out)


def _pack_into(out: bytearray, value: Any, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise BinaryPackError("value nested too deeply to pack")
    packer = _packer_for(value)
    packer(out, value, depth)


def _packer_for(value: Any) -> Callable[[bytearray, Any, int], None]:
    if value is None:
        return _pack_nil
    if isinstance(value, bool):
        return _pack_bool
    if isinstance(value, int):
        return _pack_int_value
    if isinstance(value, float):
        return _pack_float
    if isinstance(value, str):
        return _pack_str
    if isinstance(value, bytes | bytearray | memoryview):
        return _pack_raw
    if isinstance(value, Mapping):
        return _pack_map
    if isinstance(value, list | tuple):
        return _pack_array
    raise BinaryPackError(f'Type "{type(value).__name__}" not yet supported')


def _pack_nil(out: bytearray, value: None, depth: int) -> None:
    out.append(0xC0)


def _pack_bool(out: bytearray, value: bool, depth: int) -> None:
    out.append(0xC3 if value else 0xC2)


def _pack_int_value(out: bytearray, value: int, depth: int) -> None:
    _pack_int(out, value)


def _pack_int(out: bytearray, value: int) -> None:
    if -32 <= value <= 127:
        out += struct.pack(">b", value) if value < 0 else bytes((value,))
        return
    for low, high, tag, fmt in _INT_RANGES:
        if low <= value <= high:
            out.append(tag)
            out += struct.pack(fmt, value)
            return
    raise BinaryPackError(f"Invalid integer: {value}")


def _pack_float(out: bytearray, value: float, depth: int) -> None:
    if math.isfinite(value) and value.is_integer() and -(2**63) <= value < 2**64:
        _pack_int(out, int(value))
        return
    out.append(0xCB)
    out += struct.pack(">d", value)


def _pack_str(out: bytearray, value: str, depth: int) -> None:
    data = value.encode("utf-8")
    _pack_header(out, len(data), 0xB0, 0xD8, 0xD9)
    out += data


def _pack_raw(out: bytearray, value: bytes | bytearray | memoryview, depth: int) -> None:
    data = bytes(value)
    _pack_header(out, len(data), 0xA0, 0xDA, 0xDB)
    out += data


def _pack_array(out: bytearray, value: Sequence[Any], depth: int) -> None:
    _pack_header(out, len(value), 0x90, 0xDC, 0xDD)
    for item in value:
        _pack_into(out, item, depth + 1)


def _pack_map(out: bytearray, value: Mapping[Any, Any], depth: int) -> None:
    _pack_header(out, len(value), 0x80, 0xDE, 0xDF)
    for key, item in value.items():
        _pack_into(out, key, depth + 1)
        _pack_into(out, item, depth + 1)


def _pack_header(out: bytearray, length: int, fix: int, tag16: int, tag32: int) -> None:
    if length <= 0x0F:
        out.append(fix | length)
    elif length <= 0xFFFF:
        out.append(tag16)
        out += struct.pack(">H", length)
    elif length <= 0xFFFFFFFF:
        out.append(tag32)
        out += struct.pack(">I", length)
    else:
        raise BinaryPackError(f"length {length} too large to pack")


# --------------------------------------------------------------------------- decode


_FIXED: dict[int, tuple[str, int]] = {
    0xCA: (">f", 4),
    0xCB: (">d", 8),
    0xCC: (">B", 1),
    0xCD: (">H", 2),
    0xCE: (">I", 4),
    0xCF: (">Q", 8),
    0xD0: (">b", 1),
    0xD1: (">h", 2),
    0xD2: (">i", 4),
    0xD3: (">q", 8),
}
_CONSTANTS: dict[int, Any] = {0xC0: None, 0xC1: None, 0xC2: False, 0xC3: True}
# tag -> (kind, width of the length field)
_SIZED: dict[int, tuple[str, int]] = {
    0xD8: ("str", 2),
    0xD9: ("str", 4),
    0xDA: ("raw", 2),
    0xDB: ("raw", 4),
    0xDC: ("array", 2),
    0xDD: ("array", 4),
    0xDE: ("map", 2),
    0xDF: ("map", 4),
}


def unpack(data: bytes | bytearray | memoryview) -> Any:
    """Decode exactly one BinaryPack value; trailing bytes are an error."""
    reader = _Reader(bytes(data))
    value = reader.value(0)
    if reader.pos != len(reader.data):
        raise BinaryPackError(
            f"{len(reader.data) - reader.pos} unexpected trailing bytes after value"
        )
    return value


class _Reader:
    """A cursor over packed bytes; every read checks the remaining length."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, count: int) -> bytes:
        end = self.pos + count
        if end > len(self.data):
            raise BinaryPackError(
                f"truncated data: need {count} bytes at offset {self.pos}, "
                f"have {len(self.data) - self.pos}"
            )
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def number(self, fmt: str, width: int) -> Any:
        return struct.unpack(fmt, self.take(width))[0]

    def value(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise BinaryPackError("data nested too deeply")
        tag = self.take(1)[0]
        if tag <= 0x7F:
            return tag
        if tag >= 0xE0:
            return tag - 0x100
        if tag <= 0xBF:
            return self._fixed_container(tag, depth)
        return self._tagged(tag, depth)

    def _fixed_container(self, tag: int, depth: int) -> Any:
        kind = ("map", "array", "raw", "str")[(tag - 0x80) >> 4]
        return self.body(kind, tag & 0x0F, depth)

    def _tagged(self, tag: int, depth: int) -> Any:
        if tag in _CONSTANTS:
            return _CONSTANTS[tag]
        if tag in _FIXED:
            return self.number(*_FIXED[tag])
        if tag in _SIZED:
            kind, width = _SIZED[tag]
            length = self.number(">H" if width == 2 else ">I", width)
            return self.body(kind, length, depth)
        raise BinaryPackError(f"unknown tag 0x{tag:02x} at offset {self.pos - 1}")

    def body(self, kind: str, length: int, depth: int) -> Any:
        if kind == "raw":
            return self.take(length)
        if kind == "str":
            return self._text(length)
        self._check_count(length if kind == "array" else 2 * length)
        if kind == "array":
            return [self.value(depth + 1) for _ in range(length)]
        return self._map(length, depth)

    def _text(self, length: int) -> str:
        raw = self.take(length)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BinaryPackError(f"invalid UTF-8 in string: {exc.reason}") from exc

    def _check_count(self, items: int) -> None:
        # every item takes at least one byte: refuse counts the data cannot hold
        if items > len(self.data) - self.pos:
            raise BinaryPackError(
                f"truncated data: container claims {items} items, "
                f"only {len(self.data) - self.pos} bytes left"
            )

    def _map(self, length: int, depth: int) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        for _ in range(length):
            key = self.value(depth + 1)
            if isinstance(key, list | dict):
                raise BinaryPackError("map key must be a scalar")
            result[key] = self.value(depth + 1)
        return result
