"""RFC 6455 helpers (peerhub.wsframes) as pure functions: handshake, frame codec, reader."""

from __future__ import annotations

import base64
import hashlib
import os
import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peerhub import wsframes as wf
from peerhub.wsframes import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameReader,
    WebSocketError,
)
from tests.rawframes import client_frame

# RFC 6455 section 1.3: the sample nonce and the accept value the RFC gives for it.
RFC_KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
RFC_ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
RFC_REQUEST = (b"GET /chat HTTP/1.1\r\n"
               b"Host: server.example.com\r\n"
               b"Upgrade: websocket\r\n"
               b"Connection: Upgrade\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               b"Origin: http://example.com\r\n"
               b"Sec-WebSocket-Protocol: chat, superchat\r\n"
               b"Sec-WebSocket-Version: 13")


def feed_all(reader: FrameReader, chunks: list[bytes]) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    for chunk in chunks:
        out += reader.feed(chunk)
    return out


def head_lines(*lines: bytes) -> bytes:
    return b"\r\n".join(lines)


# --- the opening handshake ----------------------------------------------------------


def test_rfc_sample_key_gives_the_rfc_accept_value() -> None:
    assert wf.accept_value(RFC_KEY) == RFC_ACCEPT
    assert wf.accept_value(RFC_KEY) == base64.b64encode(
        hashlib.sha1(RFC_KEY + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())


def test_rfc_sample_request_is_a_valid_upgrade() -> None:
    method, header = parsed(RFC_REQUEST)
    assert header(b"sec-websocket-protocol") == b"chat, superchat"
    assert wf.upgrade_key(method, header) == RFC_KEY


def test_switching_protocols_response() -> None:
    response = wf.switching_protocols(RFC_KEY)
    assert response.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert response.endswith(b"\r\n\r\n") and response.count(b"\r\n\r\n") == 1
    lines = response[:-4].split(b"\r\n")[1:]
    assert sorted(lines) == sorted([b"Upgrade: websocket", b"Connection: Upgrade",
                                    b"Sec-WebSocket-Accept: " + RFC_ACCEPT])
    full = wf.switching_protocols(RFC_KEY, "chat", [(b"X-Extra", b"1")])
    assert b"\r\nSec-WebSocket-Protocol: chat\r\n" in full
    assert b"\r\nX-Extra: 1\r\n" in full
    assert b"Sec-WebSocket-Protocol" not in wf.switching_protocols(RFC_KEY, None)


def test_plain_response_closes_and_counts_its_body() -> None:
    response = wf.plain_response(403, "Forbidden")
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert b"\r\nConnection: close" in head
    assert b"\r\nContent-Length: 9" in head and body == b"Forbidden"


def test_header_has_token() -> None:
    assert wf.header_has_token(b"Upgrade", b"upgrade")
    assert wf.header_has_token(b"keep-alive, Upgrade", b"upgrade")
    assert wf.header_has_token(b"keep-alive,UPGRADE ,x", b"upgrade")
    assert not wf.header_has_token(b"keep-alive", b"upgrade")
    assert not wf.header_has_token(b"upgrader", b"upgrade")
    assert not wf.header_has_token(b"", b"upgrade")
    assert not wf.header_has_token(None, b"upgrade")


UPGRADE = {
    b"Host": b"localhost",
    b"Upgrade": b"websocket",
    b"Connection": b"Upgrade",
    b"Sec-WebSocket-Key": RFC_KEY,
    b"Sec-WebSocket-Version": b"13",
}


def parsed(head: bytes) -> tuple[str, Callable[[bytes], bytes | None]]:
    """A request head's method and a look-up of its first header values by lower-case
    name (the edge's httptools parser hands ``upgrade_key`` the same)."""
    lines = head.split(b"\r\n")
    first: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        first.setdefault(name.strip().lower(), value.strip())
    return lines[0].split(b" ")[0].decode(), first.get


def upgrade_head(method: bytes = b"GET", **changes: bytes | None
                 ) -> tuple[str, Callable[[bytes], bytes | None]]:
    """An upgrade request; ``changes`` replace headers (``_`` for ``-``), None drops one."""
    headers = dict(UPGRADE)
    for name, value in changes.items():
        key = name.replace("_", "-").encode()
        if value is None:
            headers.pop(key)
        else:
            headers[key] = value
    lines = [method + b" /peerjs?id=a HTTP/1.1"]
    lines += [name + b": " + value for name, value in headers.items()]
    return parsed(head_lines(*lines))


@pytest.mark.parametrize("changes", [
    {},
    {"Upgrade": b"WebSocket"},
    {"Connection": b"keep-alive, Upgrade"},
    {"Connection": b"upgrade"},
])
def test_upgrade_key_accepts_a_valid_upgrade(changes: dict[str, bytes]) -> None:
    assert wf.upgrade_key(*upgrade_head(**changes)) == RFC_KEY


@pytest.mark.parametrize(("method", "changes"), [
    (b"POST", {}),
    (b"get", {}),
    (b"GET", {"Upgrade": None}),
    (b"GET", {"Upgrade": b"h2c"}),
    (b"GET", {"Connection": None}),
    (b"GET", {"Connection": b"keep-alive"}),
    (b"GET", {"Connection": b"close"}),
    (b"GET", {"Sec_WebSocket_Version": None}),
    (b"GET", {"Sec_WebSocket_Version": b"8"}),
    (b"GET", {"Sec_WebSocket_Version": b"14"}),
    (b"GET", {"Sec_WebSocket_Key": None}),
    (b"GET", {"Sec_WebSocket_Key": b""}),
    (b"GET", {"Sec_WebSocket_Key": b"not base64 at all!"}),
    (b"GET", {"Sec_WebSocket_Key": base64.b64encode(b"x" * 15)}),
    (b"GET", {"Sec_WebSocket_Key": base64.b64encode(b"x" * 17)}),
    (b"GET", {"Sec_WebSocket_Key": RFC_KEY[:-2]}),  # bad padding
])
def test_upgrade_key_refuses_each_wrong_piece(method: bytes,
                                              changes: dict[str, bytes | None]) -> None:
    assert wf.upgrade_key(*upgrade_head(method, **changes)) is None


# --- the frame codec ----------------------------------------------------------------


@pytest.mark.parametrize(("size", "header"), [
    (0, b"\x81\x00"),
    (125, b"\x81\x7d"),
    (126, b"\x81\x7e\x00\x7e"),
    (65535, b"\x81\x7e\xff\xff"),
    (65536, b"\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
])
def test_encode_frame_header_lengths(size: int, header: bytes) -> None:
    payload = bytes(random.randrange(256) for _ in range(size))
    frame = wf.encode_frame(OP_TEXT, payload)
    assert frame == header + payload


def test_encode_frame_opcodes_are_final_and_unmasked() -> None:
    for opcode in (OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG):
        assert wf.encode_frame(opcode, b"ab") == bytes([0x80 | opcode, 2]) + b"ab"


@given(payload=st.binary(max_size=300), mask=st.binary(min_size=4, max_size=4))
def test_apply_mask_is_the_rfc_xor(payload: bytes, mask: bytes) -> None:
    expected = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    assert wf.apply_mask(payload, mask) == expected
    assert wf.apply_mask(expected, mask) == payload


def test_close_frame() -> None:
    assert wf.close_frame(1000) == b"\x88\x02\x03\xe8"
    assert wf.close_frame(1009, "too big") == b"\x88\x09\x03\xf1too big"
    assert wf.close_frame(wf.CLOSE_NO_STATUS) == b"\x88\x00"
    long = wf.close_frame(1000, "r" * 500)
    assert len(long) <= 2 + 125 and long[1] == len(long) - 2  # still a valid control frame


def test_close_frame_reason_stays_utf8_when_truncated() -> None:
    frame = wf.close_frame(1000, "a" + "é" * 100)  # 201 bytes: byte 120 is mid-character
    assert wf.parse_close(frame[2:]) == 1000


@given(code=st.sampled_from([1000, 1001, 1008, 1011, 3000, 4999]),
       reason=st.text(alphabet=st.characters(max_codepoint=127), max_size=200))
def test_close_frame_round_trips_through_parse_close(code: int, reason: str) -> None:
    frame = wf.close_frame(code, reason)
    assert frame[0] == 0x88 and frame[1] == len(frame) - 2 <= 125
    assert wf.parse_close(frame[2:]) == code
    assert frame[4:].decode() == reason[:123]


def test_parse_close_without_a_status() -> None:
    assert wf.parse_close(b"") == 1005


@pytest.mark.parametrize("code", [1000, 1001, 1003, 1007, 1008, 1011, 1012, 1014, 3000, 4000,
                                  4999])
def test_parse_close_accepts_valid_codes(code: int) -> None:
    assert wf.parse_close(code.to_bytes(2, "big")) == code
    assert wf.parse_close(code.to_bytes(2, "big") + "bye é".encode()) == code


@pytest.mark.parametrize("payload", [
    b"\x03",  # one byte: half a code
    (1004).to_bytes(2, "big"),
    (1005).to_bytes(2, "big"),
    (1006).to_bytes(2, "big"),
    (1015).to_bytes(2, "big"),
    (999).to_bytes(2, "big"),
    (0).to_bytes(2, "big"),
    (2000).to_bytes(2, "big"),
    (2999).to_bytes(2, "big"),
    (5000).to_bytes(2, "big"),
    (65535).to_bytes(2, "big"),
])
def test_parse_close_refuses_bad_payloads_with_1002(payload: bytes) -> None:
    with pytest.raises(WebSocketError) as err:
        wf.parse_close(payload)
    assert err.value.code == 1002


@pytest.mark.parametrize("reason", [b"\xff", b"ok\xc3", b"\xed\xa0\x80"])
def test_parse_close_refuses_a_reason_that_is_not_utf8_with_1007(reason: bytes) -> None:
    with pytest.raises(WebSocketError) as err:
        wf.parse_close((1000).to_bytes(2, "big") + reason)
    assert err.value.code == 1007


# --- FrameReader: whole, byte by byte, in random pieces ---------------------------


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY])
def test_reader_single_frame_whole(opcode: int, size: int) -> None:
    payload = os.urandom(size)
    reader = FrameReader(100_000)
    assert reader.feed(client_frame(opcode, payload)) == [(opcode, payload)]
    assert reader.feed(b"") == []


def test_reader_byte_by_byte() -> None:
    payloads = [b"", b"hello", os.urandom(300), os.urandom(70000)]
    stream = b"".join(client_frame(OP_BINARY, p) for p in payloads)
    stream += client_frame(OP_PING, b"ping!") + client_frame(OP_CLOSE, b"\x03\xe8")
    reader = FrameReader(100_000)
    out = feed_all(reader, [stream[i:i + 1] for i in range(len(stream))])
    assert out == [(OP_BINARY, p) for p in payloads] + [(OP_PING, b"ping!"),
                                                        (OP_CLOSE, b"\x03\xe8")]


def test_reader_several_frames_in_one_chunk() -> None:
    stream = (client_frame(OP_TEXT, b"one") + client_frame(OP_PONG, b"")
              + client_frame(OP_TEXT, b"two") + client_frame(OP_TEXT, b"thr")[:3])
    reader = FrameReader(1000)
    assert reader.feed(stream) == [(OP_TEXT, b"one"), (OP_PONG, b""), (OP_TEXT, b"two")]


def test_reader_fragmented_text_with_an_interleaved_ping() -> None:
    text = "Hello, wörld".encode()  # the ö is split across two fragments below
    cut = text.index(b"\xc3") + 1
    frames = [client_frame(OP_TEXT, text[:4], fin=False),
              client_frame(OP_PING, b"are you there?"),
              client_frame(OP_CONT, text[4:cut], fin=False),
              client_frame(OP_PONG, b""),
              client_frame(OP_CONT, b"", fin=False),
              client_frame(OP_CONT, text[cut:])]
    for chunks in (frames, [b"".join(frames)]):
        reader = FrameReader(1000)
        assert feed_all(reader, chunks) == [(OP_PING, b"are you there?"), (OP_PONG, b""),
                                            (OP_TEXT, text)]
        # the message is done: a new one starts cleanly
        assert reader.feed(client_frame(OP_BINARY, b"next")) == [(OP_BINARY, b"next")]


def test_reader_fragment_results_come_out_only_at_the_final_fragment() -> None:
    reader = FrameReader(1000)
    assert reader.feed(client_frame(OP_BINARY, b"a", fin=False)) == []
    assert reader.feed(client_frame(OP_CONT, b"b", fin=False)) == []
    assert reader.feed(client_frame(OP_CONT, b"c")) == [(OP_BINARY, b"abc")]


@st.composite
def frame_streams(draw: st.DrawFn) -> tuple[list[bytes], list[tuple[int, bytes]]]:
    """Messages (some fragmented, with control frames inside) and what must come out."""
    frames: list[bytes] = []
    expected: list[tuple[int, bytes]] = []
    for _ in range(draw(st.integers(1, 6))):
        if draw(st.booleans()):
            opcode = draw(st.sampled_from([OP_PING, OP_PONG, OP_CLOSE]))
            payload = draw(st.binary(max_size=125))
            frames.append(client_frame(opcode, payload,
                                       mask=draw(st.binary(min_size=4, max_size=4))))
            expected.append((opcode, payload))
            continue
        opcode = draw(st.sampled_from([OP_TEXT, OP_BINARY]))
        parts = draw(st.lists(st.binary(max_size=300), min_size=1, max_size=4))
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            frames.append(client_frame(OP_CONT if i else opcode, part, fin=last,
                                       mask=draw(st.binary(min_size=4, max_size=4))))
            if not last and draw(st.booleans()):
                ping = draw(st.binary(max_size=20))
                frames.append(client_frame(OP_PING, ping))
                expected.append((OP_PING, ping))
        expected.append((opcode, b"".join(parts)))
    return frames, expected


@settings(max_examples=200, deadline=None)
@given(stream=frame_streams(), data=st.data())
def test_reader_any_split_gives_the_same_messages(
        stream: tuple[list[bytes], list[tuple[int, bytes]]], data: st.DataObject) -> None:
    frames, expected = stream
    raw = b"".join(frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=12)))
    chunks = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    assert feed_all(FrameReader(2000), chunks) == expected
    assert feed_all(FrameReader(2000), [raw]) == expected


def test_reader_random_masks_and_random_splits() -> None:
    rng = random.Random(6455)
    for _ in range(50):
        payloads = [rng.randbytes(rng.choice([0, 5, 125, 126, 1000, 65536]))
                    for _ in range(4)]
        raw = b"".join(client_frame(OP_BINARY, p, mask=rng.randbytes(4)) for p in payloads)
        pos, chunks = 0, []
        while pos < len(raw):
            step = rng.randint(1, 3000)
            chunks.append(raw[pos:pos + step])
            pos += step
        assert feed_all(FrameReader(70000), chunks) == [(OP_BINARY, p) for p in payloads]


# --- FrameReader: protocol errors ---------------------------------------------------


PROTOCOL_ERRORS = {
    "unmasked text": [client_frame(OP_TEXT, b"hi", masked=False)],
    "unmasked ping": [client_frame(OP_PING, b"", masked=False)],
    "rsv1": [client_frame(OP_TEXT, b"hi", rsv=4)],
    "rsv2": [client_frame(OP_TEXT, b"hi", rsv=2)],
    "rsv3": [client_frame(OP_BINARY, b"hi", rsv=1)],
    "reserved data opcode 3": [client_frame(0x3, b"hi")],
    "reserved data opcode 7": [client_frame(0x7, b"")],
    "reserved control opcode 0xB": [client_frame(0xB, b"")],
    "reserved control opcode 0xF": [client_frame(0xF, b"hi")],
    "ping of 126 bytes": [client_frame(OP_PING, b"p" * 126)],
    "close of 126 bytes": [client_frame(OP_CLOSE, b"\x03\xe8" + b"r" * 124)],
    "fragmented ping": [client_frame(OP_PING, b"p", fin=False)],
    "fragmented close": [client_frame(OP_CLOSE, b"", fin=False)],
    "continuation without a start": [client_frame(OP_CONT, b"x")],
    "final continuation without a start": [client_frame(OP_CONT, b"x", fin=False)],
    "text inside a fragmented text": [client_frame(OP_TEXT, b"a", fin=False),
                                      client_frame(OP_TEXT, b"b")],
    "binary inside a fragmented text": [client_frame(OP_TEXT, b"a", fin=False),
                                        client_frame(OP_CONT, b"b", fin=False),
                                        client_frame(OP_BINARY, b"c", fin=False)],
    "continuation after the message ended": [client_frame(OP_TEXT, b"a", fin=False),
                                             client_frame(OP_CONT, b"b"),
                                             client_frame(OP_CONT, b"c")],
}


@pytest.mark.parametrize("frames", list(PROTOCOL_ERRORS.values()),
                         ids=list(PROTOCOL_ERRORS))
@pytest.mark.parametrize("whole", [True, False], ids=["whole", "framewise"])
def test_reader_protocol_errors_are_1002(frames: list[bytes], whole: bool) -> None:
    reader = FrameReader(1000)
    with pytest.raises(WebSocketError) as err:
        feed_all(reader, [b"".join(frames)] if whole else frames)
    assert err.value.code == 1002


@pytest.mark.parametrize("frame", [
    client_frame(OP_TEXT, b"hi", masked=False),
    client_frame(0x3, b"hi"),
    client_frame(OP_TEXT, b"hi", rsv=4),
])
def test_reader_header_errors_need_only_the_first_two_bytes(frame: bytes) -> None:
    with pytest.raises(WebSocketError) as err:
        FrameReader(1000).feed(frame[:2])
    assert err.value.code == 1002


def test_reader_message_of_exactly_max_size_is_fine() -> None:
    reader = FrameReader(1000)
    assert reader.feed(client_frame(OP_TEXT, b"x" * 1000)) == [(OP_TEXT, b"x" * 1000)]
    chunks = [client_frame(OP_BINARY, b"a" * 600, fin=False), client_frame(OP_CONT, b"b" * 400)]
    assert feed_all(reader, chunks) == [(OP_BINARY, b"a" * 600 + b"b" * 400)]


@pytest.mark.parametrize(("max_size", "length"), [
    (1000, 1001),  # 16-bit length
    (100, 126),  # 16-bit length just over a 7-bit-sized limit
    (100, 101),  # 7-bit length
    (70000, 70001),  # 64-bit length
    (1000, 2 ** 63),  # absurd 64-bit length
])
def test_reader_too_big_is_1009_from_the_header_alone(max_size: int, length: int) -> None:
    header = client_frame(OP_TEXT, b"", length=length, mask=b"abcd")
    header_only = header[:-4]  # not even the masking key
    for data in (header_only, header):
        with pytest.raises(WebSocketError) as err:
            FrameReader(max_size).feed(data)
        assert err.value.code == 1009


def test_reader_too_big_fragmented_message_is_1009_at_the_offending_header() -> None:
    reader = FrameReader(1000)
    assert reader.feed(client_frame(OP_TEXT, b"a" * 600, fin=False)) == []
    assert reader.feed(client_frame(OP_PING, b"still fine")) == [(OP_PING, b"still fine")]
    header = client_frame(OP_CONT, b"", fin=False, length=401)
    with pytest.raises(WebSocketError) as err:
        reader.feed(header[:4])  # 2 bytes + 16-bit length: no mask, no payload
    assert err.value.code == 1009


def test_reader_control_frames_do_not_count_against_max_size() -> None:
    reader = FrameReader(10)
    assert reader.feed(client_frame(OP_PING, b"p" * 125)) == [(OP_PING, b"p" * 125)]


def test_empty_continuation_frames_end_the_message() -> None:
    reader = FrameReader(1024)
    stream = client_frame(wf.OP_TEXT, b"ab", fin=False)
    stream += client_frame(wf.OP_CONT, b"", fin=False) * 1000
    stream += client_frame(wf.OP_CONT, b"c")
    assert reader.feed(stream) == [(wf.OP_TEXT, b"abc")]
    assert reader.frames_read == 1002


def test_a_flood_of_empty_fragments_is_refused_with_1008() -> None:
    reader = FrameReader(1 << 20)
    stream = client_frame(wf.OP_TEXT, b"a" * 64, fin=False)  # pays for one more fragment
    stream += client_frame(wf.OP_CONT, b"", fin=False) * 5000
    with pytest.raises(WebSocketError) as err:
        reader.feed(stream)
    assert err.value.code == 1008
    assert reader.frames_read == wf.MAX_FRAGMENTS + 2  # the refused one was read too


def test_a_message_of_too_many_small_fragments_is_refused_with_1008() -> None:
    reader = FrameReader(1 << 20)
    stream = client_frame(wf.OP_TEXT, b"a", fin=False)
    stream += client_frame(wf.OP_CONT, b"b", fin=False) * (2 * wf.MAX_FRAGMENTS)
    with pytest.raises(WebSocketError) as err:
        reader.feed(stream)
    assert err.value.code == 1008
    # c one-byte fragments are too many once c > 1024 + c // 64: at the 1041st
    assert reader.frames_read == 1041


def test_max_fragments_of_any_size_are_fine() -> None:
    reader = FrameReader(1 << 20)
    stream = client_frame(wf.OP_BINARY, b"", fin=False)
    stream += client_frame(wf.OP_CONT, b"", fin=False) * (wf.MAX_FRAGMENTS - 2)
    stream += client_frame(wf.OP_CONT, b"z")
    assert reader.feed(stream) == [(OP_BINARY, b"z")]


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY])
def test_autobahn_9_3_1_shape_is_fine(opcode: int) -> None:
    """Autobahn 9.3.1 / 9.4.1: an empty first frame, then fragments of 64 bytes (4 MiB
    there; 32 * MAX_FRAGMENTS of them here)."""
    parts = [os.urandom(wf.MIN_FRAGMENT_SIZE) for _ in range(32 * wf.MAX_FRAGMENTS)]
    stream = client_frame(opcode, b"", fin=False) + b"".join(
        client_frame(OP_CONT, part, fin=i == len(parts) - 1) for i, part in enumerate(parts))
    reader = FrameReader(1 << 22)
    assert reader.feed(stream) == [(opcode, b"".join(parts))]
    assert reader.frames_read == len(parts) + 1


def test_fragments_of_half_the_fair_size_are_refused_past_their_budget() -> None:
    count = 8 * wf.MAX_FRAGMENTS
    size = wf.MIN_FRAGMENT_SIZE // 2
    frames = [client_frame(OP_CONT if i else OP_TEXT, b"x" * size, fin=i == count - 1)
              for i in range(count)]
    reader = FrameReader(1 << 20)
    with pytest.raises(WebSocketError) as err:
        feed_all(reader, frames)
    assert err.value.code == 1008
    # c fragments of 32 bytes are too many once c > 1024 + c // 2: at the 2049th
    assert reader.frames_read == 2 * wf.MAX_FRAGMENTS + 1


@pytest.mark.parametrize(("count", "size", "expected"), [
    (1, 0, False),
    (wf.MAX_FRAGMENTS, 0, False),
    (wf.MAX_FRAGMENTS + 1, 0, True),
    (wf.MAX_FRAGMENTS + 1, wf.MIN_FRAGMENT_SIZE, False),
    (wf.MAX_FRAGMENTS + 2, wf.MIN_FRAGMENT_SIZE * 2 - 1, True),
    (65537, 4 * 2 ** 20, False),  # Autobahn 9.3.1
    (10 ** 6, 64 * 10 ** 6, False),
])
def test_too_many_fragments_rule(count: int, size: int, expected: bool) -> None:
    assert wf.too_many_fragments(count, size) is expected


# --- FrameReader: what it counts, and what it costs ---------------------------------


def test_frames_read_counts_every_frame_off_the_wire() -> None:
    reader = FrameReader(1000)
    stream = (client_frame(OP_PONG, b"") * 3 + client_frame(OP_PING, b"x")
              + client_frame(OP_TEXT, b"a", fin=False) + client_frame(OP_CONT, b"", fin=False)
              + client_frame(OP_PONG, b"") + client_frame(OP_CONT, b"b")
              + client_frame(OP_BINARY, b""))
    out = reader.feed(stream[:-3])  # the last frame is not all there
    assert len(out) == 6 and reader.frames_read == 8
    # 3 pongs, the ping, 2 of the fragmented message's 3 frames, the pong between them
    assert reader.other_frames == 7
    assert reader.feed(stream[-3:]) == [(OP_BINARY, b"")]
    assert reader.frames_read == 9 and reader.other_frames == 7


@pytest.mark.parametrize("size", [1, 7, 125, 126, 300, 4095, 4096, 5000, 70_000])
@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY])
def test_one_whole_frame_in_one_read_gives_what_the_frame_in_pieces_gives(
        opcode: int, size: int) -> None:
    payload = bytes(random.Random(size).randrange(256) for _ in range(size))
    frame = client_frame(opcode, payload)
    whole, pieces = FrameReader(100_000), FrameReader(100_000)
    assert whole.feed(frame) == [(opcode, payload)]
    assert feed_all(pieces, [frame[i:i + 1] for i in range(len(frame))]) == [(opcode, payload)]
    assert whole.frames_read == pieces.frames_read == 1
    assert whole.other_frames == pieces.other_frames == 0
    assert whole.headers_parsed == 1


@pytest.mark.parametrize("frame", [
    client_frame(OP_TEXT, b"x" * 300, masked=False),  # not masked: refused
    client_frame(OP_TEXT, b"x" * 301)[:-1],  # one byte short: waits
    client_frame(OP_TEXT, b"x" * 300, fin=False),  # a first fragment
    client_frame(OP_PING, b"x" * 100),
    client_frame(OP_TEXT, b"x" * 300, rsv=4),  # a reserved bit
], ids=["unmasked", "short", "fragment", "ping", "rsv"])
def test_a_read_that_is_not_one_plain_whole_frame_is_parsed_in_full(frame: bytes) -> None:
    whole, pieces = FrameReader(10_000), FrameReader(10_000)
    try:
        got: object = whole.feed(frame)
    except WebSocketError as exc:
        got = exc.code
    try:
        expected: object = feed_all(pieces, [frame[i:i + 1] for i in range(len(frame))])
    except WebSocketError as exc:
        expected = exc.code
    assert got == expected
    assert (whole.frames_read, whole.other_frames) == (pieces.frames_read, pieces.other_frames)


def test_a_message_over_the_limit_in_one_read_is_refused() -> None:
    with pytest.raises(WebSocketError) as caught:
        FrameReader(299).feed(client_frame(OP_TEXT, b"x" * 300))
    assert caught.value.code == wf.CLOSE_TOO_BIG


@settings(max_examples=100, deadline=None)
@given(stream=frame_streams(), data=st.data())
def test_frames_read_does_not_depend_on_the_split(
        stream: tuple[list[bytes], list[tuple[int, bytes]]], data: st.DataObject) -> None:
    frames, _ = stream
    raw = b"".join(frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=12)))
    chunks = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    reader = FrameReader(2000)
    feed_all(reader, chunks)
    assert reader.frames_read == len(frames)
    whole = FrameReader(2000)
    whole.feed(raw)
    assert reader.other_frames == whole.other_frames
    # a header is parsed when it is all there, and once more when the whole frame is
    # (if that came in a later read): never once per read
    assert len(frames) <= reader.headers_parsed <= 2 * len(frames)


class MaskCounter:
    """Stands in for wsframes.apply_mask and counts the bytes it unmasks."""

    def __init__(self) -> None:
        self.calls = 0
        self.bytes = 0

    def __call__(self, data: bytes, mask: bytes) -> bytes:
        self.calls += 1
        self.bytes += len(data)
        return bytes(b ^ mask[i % 4] for i, b in enumerate(bytes(data)))


SLOW_DRIP = 256 * 1024


def drip(stream: bytes, step: int) -> list[bytes]:
    return [stream[i:i + step] for i in range(0, len(stream), step)]


@pytest.mark.parametrize("step", [1, 10, 1000])
def test_a_slow_drip_costs_what_one_write_costs(step: int,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """One 256 KiB message in tiny reads: its header is parsed once and its payload is
    unmasked once, as when it arrives in one write (no work per read that grows with
    the bytes already buffered)."""
    payload = os.urandom(SLOW_DRIP)
    stream = client_frame(OP_BINARY, payload) + client_frame(OP_PING, b"after")
    counters = []
    for chunks in ([stream], drip(stream, step)):
        counter = MaskCounter()
        monkeypatch.setattr(wf, "apply_mask", counter)
        reader = FrameReader(SLOW_DRIP)
        largest = 0
        out: list[tuple[int, bytes]] = []
        for chunk in chunks:
            out += reader.feed(chunk)
            largest = max(largest, len(reader._buf))
        assert out == [(OP_BINARY, payload), (OP_PING, b"after")]
        assert largest <= SLOW_DRIP + 14  # never more than the one frame in progress
        counters.append((counter.calls, counter.bytes, reader.headers_parsed))
    whole, dripped = counters
    assert whole == (2, SLOW_DRIP + 5, 2)
    # each header is parsed when it is there and again when its frame is complete
    assert dripped[:2] == whole[:2] and dripped[2] <= 2 * whole[2]


def test_a_frame_in_one_read_does_not_go_through_the_buffer() -> None:
    reader = FrameReader(1000)
    stream = client_frame(OP_TEXT, b"one") + client_frame(OP_TEXT, b"two")
    assert reader.feed(stream + stream[:3]) == [(OP_TEXT, b"one"), (OP_TEXT, b"two")]
    assert bytes(reader._buf) == stream[:3]  # only the unfinished frame waits
    assert reader.buffered == 3
    assert reader.feed(stream[3:]) == [(OP_TEXT, b"one"), (OP_TEXT, b"two")]
    assert not reader._buf and reader.buffered == 0


def test_the_reader_tells_how_many_bytes_the_frame_in_progress_lacks() -> None:
    reader = FrameReader(100_000)
    frame = client_frame(OP_BINARY, bytes(70_000))  # 2 + 8 (length) + 4 (mask) + payload
    assert reader.missing == 0
    reader.feed(frame[:1])
    assert reader.missing == 1  # the second header byte says how long the header is
    reader.feed(frame[1:2])
    assert reader.missing == 8  # the 64-bit length
    reader.feed(frame[2:20])
    assert reader.missing == len(frame) - 20
    assert reader.feed(frame[20:] + frame[:5]) == [(OP_BINARY, bytes(70_000))]
    assert reader.missing == 5  # the next frame's header
    reader.feed(frame[5:-1])
    assert reader.missing == 1
    assert reader.feed(frame[-1:]) == [(OP_BINARY, bytes(70_000))]
    assert reader.missing == 0


def test_the_reader_accepts_any_bytes_like_read() -> None:
    stream = client_frame(OP_TEXT, b"hello") * 2
    for kind in (bytes, bytearray, memoryview):
        reader = FrameReader(1000)
        out = reader.feed(kind(stream[:9])) + reader.feed(kind(stream[9:]))
        assert out == [(OP_TEXT, b"hello")] * 2


# --- FrameReader: any bytes at all ----------------------------------------------------


def feed_until_error(reader: FrameReader, chunks: list[bytes]
                     ) -> tuple[list[tuple[int, bytes]], int | None]:
    out: list[tuple[int, bytes]] = []
    for chunk in chunks:
        try:
            out += reader.feed(chunk)
        except WebSocketError as exc:
            return out, exc.code
    return out, None


@st.composite
def noisy_streams(draw: st.DrawFn) -> bytes:
    """Valid frames mixed with random bytes and random headers: mostly broken streams."""
    parts: list[bytes] = []
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.integers(0, 2))
        if kind == 0:
            parts.append(draw(st.binary(max_size=40)))
        elif kind == 1:
            parts.append(client_frame(draw(st.integers(0, 15)), draw(st.binary(max_size=200)),
                                      fin=draw(st.booleans()), rsv=draw(st.integers(0, 7)),
                                      masked=draw(st.booleans())))
        else:
            parts.append(client_frame(draw(st.sampled_from([OP_TEXT, OP_BINARY, OP_PING])),
                                      draw(st.binary(max_size=130))))
    return b"".join(parts)


@settings(max_examples=150, deadline=None)
@given(raw=noisy_streams(), data=st.data())
def test_any_bytes_give_frames_or_a_websocket_error_whatever_the_split(
        raw: bytes, data: st.DataObject) -> None:
    """Only WebSocketError ever comes out; a split changes neither the frames before the
    first error nor the error's code (byte by byte is the reference)."""
    expected, code = feed_until_error(FrameReader(150), [raw[i:i + 1] for i in range(len(raw))])
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=8)))
    chunks = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    got, got_code = feed_until_error(FrameReader(150), chunks)
    assert got_code == code
    if code is None:
        assert got == expected
    else:  # frames in the read that raised are not returned
        assert got == expected[:len(got)]
