"""Just enough RFC 6455 for a load generator: the client handshake and frames.

The generator must be cheaper than the servers it drives, so frames are built and
parsed here by hand instead of through a full websocket library. Client frames carry
an all-zero masking key: valid framing that both servers unmask as usual, while the
generator skips the XOR. Server frames are never masked.
"""

from __future__ import annotations

import binascii
import random
import re
import struct
from collections.abc import Callable
from urllib.parse import quote

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

_ZERO_MASK = b"\x00\x00\x00\x00"
HEADER_END = b"\r\n\r\n"
SWITCHING_PREFIX = b"HTTP/1.1 101 "  # how both servers' 101 begins
_UNQUOTED = re.compile(r"[A-Za-z0-9_.~/-]*")  # what quote() leaves as it is


class HandshakeError(ConnectionError):
    """The server did not answer the upgrade with ``101 Switching Protocols``."""


def peerjs_path(mount: str, key: str, peer_id: str, token: str) -> str:
    """The PeerJS websocket request target, e.g. ``/peerjs?key=peerjs&id=A&token=T``."""
    return f"{mount}peerjs?key={_quote(key)}&id={_quote(peer_id)}&token={_quote(token)}"


def _quote(text: str) -> str:
    """``quote(text)``, without its work for the usual text that needs no escapes."""
    return text if _UNQUOTED.fullmatch(text) else quote(text)


def upgrade_request(host: str, port: int, target: str) -> bytes:
    """The HTTP/1.1 upgrade request for ``target`` (its key from :mod:`random`: a nonce
    for the handshake, no secret, and no system call per connection)."""
    nonce = binascii.b2a_base64(random.randbytes(16), newline=False).decode()
    return (
        f"GET {target} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {nonce}\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "\r\n"
    ).encode()


class UpgradeRequests:
    """The upgrade requests to one PeerServer for many ids: what :func:`peerjs_path` and
    :func:`upgrade_request` make, with the parts that are the same for every id joined
    once."""

    __slots__ = ("_start", "_middle", "_end")

    def __init__(self, host: str, port: int, mount: str, key: str):
        self._start = f"GET {mount}peerjs?key={_quote(key)}&id="
        self._middle = (f" HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Key: ")
        self._end = "\r\nSec-WebSocket-Version: 13\r\n\r\n"

    def request(self, peer_id: str, token: str) -> bytes:
        """The upgrade request for ``peer_id`` with ``token`` (a fresh key each)."""
        nonce = binascii.b2a_base64(random.randbytes(16), newline=False).decode()
        return (f"{self._start}{_quote(peer_id)}&token={_quote(token)}{self._middle}"
                f"{nonce}{self._end}").encode()


def split_response(buffer: bytes) -> tuple[bytes, bytes] | None:
    """Split ``buffer`` into (response head, rest) once the head is complete."""
    end = buffer.find(HEADER_END)
    if end < 0:
        return None
    return buffer[:end], buffer[end + len(HEADER_END):]


def check_switching(head: bytes) -> None:
    """Raise :class:`HandshakeError` unless ``head`` is a 101 response."""
    status = head.split(b"\r\n", 1)[0]
    parts = status.split(b" ", 2)
    if len(parts) < 2 or parts[1] != b"101":
        raise HandshakeError(status.decode("latin-1", "replace"))


def client_frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    """One final, masked (with a zero key) client frame."""
    n = len(payload)
    first = 0x80 | opcode
    if n < 126:
        head = struct.pack("!BB", first, 0x80 | n)
    elif n < 0x10000:
        head = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, n)
    return head + _ZERO_MASK + payload


def close_frame(code: int = 1000) -> bytes:
    """A client close frame with ``code``."""
    return client_frame(struct.pack("!H", code), OP_CLOSE)


FrameSink = Callable[[int, bytes], None]


class FrameParser:
    """Incremental parser for server frames; calls ``sink(opcode, payload)`` per frame.

    Fragmented messages are reassembled; control frames between fragments pass
    straight through.
    """

    __slots__ = ("_buf", "_fragments", "_frag_opcode", "_sink")

    def __init__(self, sink: FrameSink):
        self._buf = b""
        self._sink = sink
        self._fragments: list[bytes] = []
        self._frag_opcode = 0

    def feed(self, data: bytes) -> None:
        """Consume ``data`` and emit every frame it completes."""
        buf = self._buf + data if self._buf else data
        pos = self._parse(buf)
        self._buf = buf[pos:]

    def _parse(self, buf: bytes) -> int:
        pos, end = 0, len(buf)
        while end - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            n = b1 & 0x7F
            head = 2
            if n == 126:
                if end - pos < 4:
                    break
                n = (buf[pos + 2] << 8) | buf[pos + 3]
                head = 4
            elif n == 127:
                if end - pos < 10:
                    break
                n = struct.unpack_from("!Q", buf, pos + 2)[0]
                head = 10
            if b1 & 0x80:
                head += 4  # servers must not mask; tolerate it by skipping the key
            if end - pos < head + n:
                break
            payload = buf[pos + head:pos + head + n]
            pos += head + n
            self._frame(b0, payload)
        return pos

    def _frame(self, b0: int, payload: bytes) -> None:
        opcode = b0 & 0x0F
        final = bool(b0 & 0x80)
        if opcode >= OP_CLOSE or (final and opcode != OP_CONTINUATION):
            self._sink(opcode, payload)
            return
        if opcode != OP_CONTINUATION:
            self._frag_opcode = opcode
        self._fragments.append(payload)
        if final:
            whole = b"".join(self._fragments)
            self._fragments.clear()
            self._sink(self._frag_opcode, whole)
