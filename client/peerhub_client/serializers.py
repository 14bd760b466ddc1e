"""The data-connection serializations: ``binary``, ``json``, ``raw`` and ``MsgPack``.

A serializer turns one application value into the DataChannel frames to send
(``encode``) and turns each received frame into zero or more values (``decode``).
Frames are ``bytes`` (binary DataChannel messages) or ``str`` (text messages).
Wire formats are as in ``peerjs-protocol.md`` §4.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Any, Final

import msgpack

from .binarypack import pack, unpack
from .chunking import CHUNK_MTU, ChunkLimits, Reassembler, chunk_frames, is_chunk
from .errors import MessageTooBig, SerializationError, UnknownSerialization

__all__ = [
    "CLOSE",
    "MSGPACK_PIECE",
    "SERIALIZATIONS",
    "CloseSignal",
    "Frame",
    "Serializer",
    "create_serializer",
    "wire_name",
]

Frame = str | bytes
MSGPACK_PIECE = 32 * 1024
CLOSE_MESSAGE: Final = {"__peerData": {"type": "close"}}

# name accepted from users or OFFERs -> name PeerJS puts on the wire
SERIALIZATIONS: Final[dict[str, str]] = {
    "default": "binary",
    "binary": "binary",
    "binary-utf8": "binary",
    "json": "json",
    "raw": "raw",
    "none": "raw",
    "MsgPack": "MsgPack",
}


class CloseSignal:
    """Decoded in-band request from the remote side to close the connection."""

    def __repr__(self) -> str:
        return "CLOSE"


CLOSE: Final = CloseSignal()


def wire_name(name: str) -> str:
    """The serialization name to send in an OFFER for a user-facing ``name``."""
    try:
        return SERIALIZATIONS[name]
    except KeyError:
        raise UnknownSerialization(f"Unknown serialization {name!r}") from None


def is_close_message(value: Any) -> bool:
    """True for ``{"__peerData": {"type": "close"}}``."""
    if not isinstance(value, dict):
        return False
    marker = value.get("__peerData")
    return isinstance(marker, dict) and marker.get("type") == "close"


class Serializer(ABC):
    """Encodes values into frames and decodes frames into values for one connection."""

    name: str = ""

    @abstractmethod
    def encode(self, data: Any) -> list[Frame]:
        """Frames that carry ``data``; raises ``SerializationError`` if it cannot."""

    @abstractmethod
    def decode(self, frame: Frame) -> list[Any]:
        """Values carried by one received frame (``CLOSE`` for a close request)."""

    def close_frames(self) -> list[Frame]:
        """Frames of the in-band close request (``close(flush=True)``)."""
        return self.encode(CLOSE_MESSAGE)

    def pending(self) -> int:
        """How many multi-frame messages are incomplete."""
        return 0

    def expire(self) -> list[str]:
        """Describe and drop incomplete multi-frame messages that timed out."""
        return []

    def incomplete(self) -> list[str]:
        """Describe and drop incomplete multi-frame messages (used at close)."""
        return []


def _require_bytes(frame: Frame, name: str) -> bytes:
    if isinstance(frame, str):
        raise SerializationError(f"{name} connection received a text frame, expected binary")
    return frame


class BinarySerializer(Serializer):
    """BinaryPack with PeerJS 1.5.x chunking above 16,300 packed bytes."""

    name = "binary"

    def __init__(self, limits: ChunkLimits | None = None) -> None:
        self._next_id = 1
        self._reassembler = Reassembler(limits)

    def encode(self, data: Any) -> list[Frame]:
        packed = pack(data)
        if len(packed) <= CHUNK_MTU:
            return [packed]
        frames = chunk_frames(packed, self._next_id)
        self._next_id += 1
        return list(frames)

    def decode(self, frame: Frame) -> list[Any]:
        value = unpack(_require_bytes(frame, "binary"))
        if is_close_message(value):
            return [CLOSE]
        if not is_chunk(value):
            return [value]
        whole = self._reassembler.add(value)
        return [] if whole is None else [unpack(whole)]

    def pending(self) -> int:
        return self._reassembler.pending_messages

    def expire(self) -> list[str]:
        return [_incomplete_text(msg_id, "timed out") for msg_id in self._reassembler.expire()]

    def incomplete(self) -> list[str]:
        return [_incomplete_text(msg_id, "never completed") for msg_id in self._reassembler.clear()]


def _incomplete_text(msg_id: Any, why: str) -> str:
    return f"chunked message {msg_id!r} {why}: some chunks never arrived"


class JsonSerializer(Serializer):
    """JSON text; binary UTF-8 frames as 1.5.x sends, or text frames for 0.3.x/1.4.x peers."""

    name = "json"

    def __init__(self, text_frames: bool = False) -> None:
        self.text_frames = text_frames

    def encode(self, data: Any) -> list[Frame]:
        try:
            text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise SerializationError(f"cannot encode as JSON: {exc}") from exc
        encoded = text.encode("utf-8")
        if len(encoded) >= CHUNK_MTU:
            raise MessageTooBig("Message too big for JSON channel")
        return [text if self.text_frames else encoded]

    def decode(self, frame: Frame) -> list[Any]:
        try:
            value = json.loads(frame)
        except (UnicodeDecodeError, ValueError) as exc:
            raise SerializationError(f"invalid JSON message: {exc}") from exc
        return [CLOSE if is_close_message(value) else value]


class RawSerializer(Serializer):
    """No transformation: ``str`` goes as a text frame, bytes-like as a binary frame."""

    name = "raw"

    def encode(self, data: Any) -> list[Frame]:
        if isinstance(data, str):
            return [data]
        if isinstance(data, bytes | bytearray | memoryview):
            return [bytes(data)]
        raise SerializationError(f"raw connections carry str or bytes, not {type(data).__name__}")

    def decode(self, frame: Frame) -> list[Any]:
        return [frame]

    def close_frames(self) -> list[Frame]:
        return []


class MsgPackSerializer(Serializer):
    """MessagePack as a byte stream cut into 32 KiB frames (1.5.x ``MsgPackPeer``)."""

    name = "MsgPack"

    def __init__(self, limits: ChunkLimits | None = None) -> None:
        self._max_buffer = (limits or ChunkLimits()).max_message_bytes
        self._unpacker = self._new_unpacker()

    def _new_unpacker(self) -> msgpack.Unpacker:
        return msgpack.Unpacker(
            raw=False, timestamp=3, strict_map_key=False, max_buffer_size=self._max_buffer
        )

    def encode(self, data: Any) -> list[Frame]:
        try:
            encoded = msgpack.packb(data, use_bin_type=True, datetime=True)
        except (TypeError, ValueError, OverflowError) as exc:
            raise SerializationError(f"cannot encode as MsgPack: {exc}") from exc
        return [encoded[i : i + MSGPACK_PIECE] for i in range(0, len(encoded), MSGPACK_PIECE)]

    def decode(self, frame: Frame) -> list[Any]:
        try:
            self._unpacker.feed(_require_bytes(frame, "MsgPack"))
            values = list(self._unpacker)
        except (msgpack.UnpackException, ValueError, TypeError) as exc:
            self._unpacker = self._new_unpacker()
            raise SerializationError(f"invalid MsgPack stream: {exc!r}") from exc
        return [CLOSE if is_close_message(v) else v for v in values]


def create_serializer(
    name: str, *, limits: ChunkLimits | None = None, text_json: bool = False
) -> Serializer:
    """A fresh serializer for the serialization ``name`` (raises ``UnknownSerialization``)."""
    wire = wire_name(name)
    if wire == "binary":
        return BinarySerializer(limits)
    if wire == "json":
        return JsonSerializer(text_frames=text_json)
    if wire == "MsgPack":
        return MsgPackSerializer(limits)
    return RawSerializer()
