"""RFC 6455 as pure functions: the opening handshake and the frame codec.

Nothing here touches sockets or the event loop; :mod:`edge.websocket` feeds it bytes.
Only what a server needs is here: it reads masked client frames (text, binary,
continuation, close, ping, pong, no extensions) and writes unmasked frames.
"""

from __future__ import annotations

import binascii
import hashlib
import struct
from collections.abc import Callable

# apply_mask(payload, mask): XOR a payload with its 4-byte masking key (RFC 6455 5.3).
# websockets (a requirement) ships it in C; it is called for every frame received.
try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - its pure-Python version
    from websockets.utils import apply_mask

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_INVALID_DATA = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_NO_STATUS = 1005
CLOSE_ABNORMAL = 1006

#: Head of an HTTP request larger than this is not read by the front.
#: Fragments of any size one message may have, empty ones included (a message of many
#: tiny fragments is a way to make the server do work without ever finishing a message)...
MAX_FRAGMENTS = 1024
#: ... and one more for every this many bytes it holds (fragments that carry this much
#: cost no more than the bytes they carry, which ``max_size`` bounds).
MIN_FRAGMENT_SIZE = 64


class WebSocketError(Exception):
    """A client broke RFC 6455; close the connection with ``code``."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


def header_has_token(value: bytes | None, token: bytes) -> bool:
    """Tell whether a comma-separated header value holds ``token`` (any case)."""
    if value is None:
        return False
    value = value.lower()
    if value == token:  # the usual header: the token alone
        return True
    return any(part.strip() == token for part in value.split(b","))


def upgrade_key(method: str, header: Callable[[bytes], bytes | None]) -> bytes | None:
    """The Sec-WebSocket-Key of a valid version-13 GET upgrade, else None.

    ``header`` looks up a request header by its lower-case name (first value or None).
    """
    if method != "GET":
        return None
    if not header_has_token(header(b"upgrade"), b"websocket"):
        return None
    if not header_has_token(header(b"connection"), b"upgrade"):
        return None
    if header(b"sec-websocket-version") != b"13":
        return None
    key = header(b"sec-websocket-key")
    if key is None:
        return None
    try:  # (base64.b64decode(key, validate=True) is this call, after two Python frames)
        if len(binascii.a2b_base64(key, strict_mode=True)) != 16:
            return None
    except ValueError:  # binascii.Error
        return None
    return key


def accept_value(key: bytes) -> bytes:
    """The Sec-WebSocket-Accept value for a client's Sec-WebSocket-Key."""
    # (base64.b64encode, without its Python frame)
    return binascii.b2a_base64(hashlib.sha1(key + GUID).digest(), newline=False)


_SWITCHING = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Accept: ")


def switching_protocols(key: bytes, subprotocol: str | None = None,
                        extra: list[tuple[bytes, bytes]] | None = None) -> bytes:
    """The 101 response that completes the opening handshake."""
    if not subprotocol and not extra:  # the usual answer: one concatenation
        return _SWITCHING + accept_value(key) + b"\r\n\r\n"
    lines = [_SWITCHING + accept_value(key)]
    if subprotocol:
        lines.append(b"Sec-WebSocket-Protocol: " + subprotocol.encode("latin-1"))
    for name, value in extra or ():
        lines.append(name + b": " + value)
    return b"\r\n".join(lines) + b"\r\n\r\n"


def plain_response(status: int, reason: str) -> bytes:
    """A short HTTP response that closes the connection (a refused handshake)."""
    body = reason.encode()
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


_SHORT = struct.Struct("!BB")
_MEDIUM = struct.Struct("!BBH")
_LONG = struct.Struct("!BBQ")


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One unmasked, final server frame."""
    n = len(payload)
    if n < 126:
        return _SHORT.pack(0x80 | opcode, n) + payload
    if n < 65536:
        return _MEDIUM.pack(0x80 | opcode, 126, n) + payload
    return _LONG.pack(0x80 | opcode, 127, n) + payload


def close_frame(code: int, reason: str = "") -> bytes:
    """A close frame with ``code`` (1005 means: no status) and an optional reason."""
    if code == CLOSE_NO_STATUS:
        return encode_frame(OP_CLOSE, b"")
    # A control frame holds 125 bytes: the code and at most 123 bytes of whole characters.
    text = reason.encode()[:123].decode("utf-8", "ignore").encode()
    return encode_frame(OP_CLOSE, code.to_bytes(2, "big") + text)


def parse_close(payload: bytes) -> int:
    """The status code of a client's close frame (1005 if it has none)."""
    if not payload:
        return CLOSE_NO_STATUS
    if len(payload) == 1:
        raise WebSocketError(CLOSE_PROTOCOL_ERROR, "bad close frame")
    code = int.from_bytes(payload[:2], "big")
    if not (1000 <= code <= 1014 and code not in (1004, 1005, 1006)) and \
            not 3000 <= code <= 4999:
        raise WebSocketError(CLOSE_PROTOCOL_ERROR, "bad close code")
    try:
        payload[2:].decode()
    except UnicodeDecodeError:
        raise WebSocketError(CLOSE_INVALID_DATA, "close reason is not UTF-8") from None
    return code


class FrameReader:
    """Turns the bytes a client sends into whole messages and control frames.

    ``feed`` returns ``(opcode, payload)`` pairs: OP_TEXT / OP_BINARY with the whole
    (reassembled, unmasked) message, or a control frame. Text is not decoded here.
    A message larger than ``max_size`` raises :class:`WebSocketError` (1009) as soon as
    its header says so, before its payload is buffered.

    The cost is linear in the bytes received however they are split into reads: bytes
    that do not finish a frame wait in one buffer that only grows at its end; a frame's
    header is parsed when it is all there and once more when the whole frame is (in
    between, the reader only counts bytes), and each payload is unmasked once, in C.
    Frames that arrive whole in one read are parsed straight from it, without passing
    through the buffer.

    ``frames_read`` counts every frame parsed off the wire: data, control and
    continuation frames, empty ones included; ``other_frames`` the part of them that was
    not a whole data message by itself (pings, pongs, close, every fragment of a
    fragmented message but one). The caller can charge a rate limit with it, so that
    floods of pongs or of empty fragments are not free, without looking at each frame.
    """

    __slots__ = ("max_size", "frames_read", "other_frames", "headers_parsed", "_buf",
                 "_need", "_frag_op", "_frag", "_frag_len", "_frag_count")

    def __init__(self, max_size: int):
        self.max_size = max_size
        #: Frames parsed off the wire so far, of every kind.
        self.frames_read = 0
        #: Of those, frames that were not a whole data message on their own.
        self.other_frames = 0
        #: Times a frame header was parsed: once per frame that arrives in one read, twice
        #: for one split over reads (when its header is there, when all of it is), never
        #: once per read. A measure of the reader's work, for tests.
        self.headers_parsed = 0
        self._buf = bytearray()  # bytes received that do not finish a frame yet
        self._need = 0  # bytes ``_buf`` must hold before parsing is worth trying again
        self._frag_op = 0  # opcode of the fragmented message in progress, 0: none
        self._frag: list[bytes] = []
        self._frag_len = 0
        self._frag_count = 0  # frames of that message so far, empty ones included

    @property
    def buffered(self) -> int:
        """Bytes received that wait for the rest of their frame (0: none)."""
        return len(self._buf)

    @property
    def missing(self) -> int:
        """Bytes the frame in progress still lacks before it can be parsed (0: none)."""
        return self._need - len(self._buf) if self._buf else 0

    def feed(self, data: bytes | bytearray | memoryview) -> list[tuple[int, bytes]]:
        """Consume ``data``; return the complete messages and control frames in it."""
        buf = self._buf
        if not buf and not self._frag_op:
            # The usual read: exactly one whole, masked, final text or binary frame of
            # under 4 KiB (what a browser writes per message). Anything else, or any
            # doubt, goes through _parse.
            end = len(data)
            n = data[1] - 0x80 if end > 6 else 0  # the mask bit must be set
            head = 6
            if n == 126 and end > 8:
                n = (data[2] << 8) | data[3]
                head = 8
            elif n > 125:
                n = 0
            b0 = data[0] if n > 0 else 0
            if (b0 == 0x81 or b0 == 0x82) and head + n == end and n < 4096 \
                    and n <= self.max_size:
                self.frames_read += 1
                self.headers_parsed += 1
                payload = apply_mask(data[head:], data[head - 4:head])  # type: ignore[arg-type]
                return [(b0 & 0x0F, payload)]
        out: list[tuple[int, bytes]] = []
        if not buf:
            pos = self._parse(data, out)
            if pos < len(data):
                buf += memoryview(data)[pos:] if pos else data
            return out
        buf += data
        if len(buf) < self._need:
            return out
        with memoryview(buf) as view:
            pos = self._parse(view, out)
        if pos:
            del buf[:pos]  # CPython moves the start of a bytearray, not its bytes
        return out

    def _parse(self, buf: bytes | bytearray | memoryview, out: list[tuple[int, bytes]]) -> int:
        """Parse whole frames from ``buf`` into ``out``; return the bytes consumed and set
        ``_need`` to the bytes the next frame needs (counted from the returned offset)."""
        end = len(buf)
        pos = 0
        frames = headers = others = 0
        try:
            while True:
                left = end - pos
                if left < 2:
                    if left:
                        self._need = 2
                    return pos
                b0 = buf[pos]
                b1 = buf[pos + 1]
                n = b1 & 0x7F
                head = 6  # with the masking key
                if n == 126:
                    if left < 4:
                        self._need = 4
                        return pos
                    n = (buf[pos + 2] << 8) | buf[pos + 3]
                    head = 8
                elif n == 127:
                    if left < 10:
                        self._need = 10
                        return pos
                    n = int.from_bytes(buf[pos + 2:pos + 10], "big")
                    head = 14
                headers += 1
                if (b0 == 0x81 or b0 == 0x82) and b1 & 0x80 and not self._frag_op \
                        and n <= self.max_size:
                    whole = True  # the usual frame: a masked, final text or binary one
                else:
                    self._check_header(b0, b1, n)
                    whole = False
                start = pos + head
                stop = start + n
                if stop > end:
                    self._need = stop - pos
                    return pos
                if not n:
                    payload = b""
                elif n < 4096 or type(buf) is not bytes:
                    # (C and Python apply_mask take any buffer; the stub says bytes)
                    mask = buf[start - 4:start]
                    payload = apply_mask(buf[start:stop], mask)  # type: ignore[arg-type]
                else:  # unmask straight from the read, without copying it first
                    with memoryview(buf) as view:
                        payload = apply_mask(view[start:stop], buf[start - 4:start])
                pos = stop
                frames += 1
                if whole:
                    out.append((b0 & 0x0F, payload))
                    continue
                others += 1
                msg = self._assemble(b0 & 0x80, b0 & 0x0F, payload)
                if msg is not None:
                    out.append(msg)
                    if msg[0] < 8:  # a fragmented message, whole: one of its frames
                        others -= 1
        finally:
            self.frames_read += frames
            self.headers_parsed += headers
            if others:
                self.other_frames += others

    def _check_header(self, b0: int, b1: int, n: int) -> None:
        opcode = b0 & 0x0F
        if b0 & 0x70:
            raise WebSocketError(CLOSE_PROTOCOL_ERROR, "reserved bits set")
        if not b1 & 0x80:
            raise WebSocketError(CLOSE_PROTOCOL_ERROR, "client frame not masked")
        if opcode >= 8:
            if opcode > OP_PONG:
                raise WebSocketError(CLOSE_PROTOCOL_ERROR, "reserved opcode")
            if n > 125 or not b0 & 0x80:
                raise WebSocketError(CLOSE_PROTOCOL_ERROR, "bad control frame")
            return
        if opcode not in (OP_CONT, OP_TEXT, OP_BINARY):
            raise WebSocketError(CLOSE_PROTOCOL_ERROR, "reserved opcode")
        if n + (self._frag_len if opcode == OP_CONT else 0) > self.max_size:
            raise WebSocketError(CLOSE_TOO_BIG, "message too big")

    def _assemble(self, fin: int, opcode: int, payload: bytes) -> tuple[int, bytes] | None:
        if opcode >= 8:
            return opcode, payload
        if opcode == OP_CONT:
            if not self._frag_op:
                raise WebSocketError(CLOSE_PROTOCOL_ERROR, "continuation without a start")
            self._frag_count += 1
            self._frag_len += len(payload)
            if too_many_fragments(self._frag_count, self._frag_len):
                raise WebSocketError(CLOSE_POLICY, "too many fragments")
            if payload:
                self._frag.append(payload)
            if not fin:
                return None
            msg = (self._frag_op, b"".join(self._frag))
            self._frag_op, self._frag, self._frag_len, self._frag_count = 0, [], 0, 0
            return msg
        if self._frag_op:
            raise WebSocketError(CLOSE_PROTOCOL_ERROR, "new message inside a fragmented one")
        if fin:
            return opcode, payload
        self._frag_op, self._frag, self._frag_len = opcode, [payload], len(payload)
        self._frag_count = 1
        return None


def too_many_fragments(count: int, size: int) -> bool:
    """Tell whether a message of ``count`` fragments (empty ones included) holding
    ``size`` bytes so far has too many: a message may have MAX_FRAGMENTS fragments of
    any size, and one more for every MIN_FRAGMENT_SIZE bytes it holds. So a flood of
    tiny or empty fragments is refused, while a big message sent in fragments of fair
    size is not (Autobahn 9.3.1: an empty first frame, then 4 MiB in 64-byte ones)."""
    return count > MAX_FRAGMENTS + size // MIN_FRAGMENT_SIZE
