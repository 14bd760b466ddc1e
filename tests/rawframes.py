"""Building client websocket frames byte by byte, for tests that speak raw RFC 6455."""

from __future__ import annotations

import os
import struct


def client_frame(opcode: int, payload: bytes = b"", *, fin: bool = True,
                 mask: bytes | None = None, masked: bool = True, rsv: int = 0,
                 length: int | None = None) -> bytes:
    """One client frame as a browser sends it (masked with a random key by default).

    ``length`` overrides the announced payload length (the payload is still appended).
    """
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    mbit = 0x80 if masked else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not masked:
        return head + payload
    if mask is None:
        mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
