"""Chunking, json, raw and MsgPack wire formats (peerjs-protocol.md §4.2-§4.5)."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest

from peerhub_client.binarypack import pack, unpack
from peerhub_client.chunking import CHUNK_MTU, ChunkError, ChunkLimits, Reassembler, chunk_frames
from peerhub_client.errors import MessageTooBig, SerializationError, UnknownSerialization
from peerhub_client.serializers import (
    CLOSE,
    MSGPACK_PIECE,
    BinarySerializer,
    JsonSerializer,
    MsgPackSerializer,
    RawSerializer,
    create_serializer,
    wire_name,
)


def _hex(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


# ----------------------------------------------------------------------------- chunking


def test_40000_byte_buffer_is_cut_into_three_chunks_like_peerjs() -> None:
    frames = BinarySerializer().encode(bytes(40000))
    assert len(frames) == 3
    first = frames[0]
    assert isinstance(first, bytes)
    assert len(first) == 16331
    assert first.startswith(_hex("84 ba 5f5f7065657244617461 01 b1 6e 00 b4 64617461 da 3f ac"))
    assert first.endswith(_hex("b5 746f74616c 03"))
    last = unpack(frames[2])
    assert last["n"] == 2 and len(last["data"]) == 7403
    assert frames[2][frames[2].index(b"data") + 4 : frames[2].index(b"data") + 7] == _hex(
        "da 1c eb"
    )


def test_message_ids_count_up_per_serializer() -> None:
    ser = BinarySerializer()
    ids = [unpack(ser.encode(bytes(20000))[0])["__peerData"] for _ in range(3)]
    assert ids == [1, 2, 3]


def test_small_messages_are_not_chunked() -> None:
    assert BinarySerializer().encode(bytes(CHUNK_MTU - 3)) == [pack(bytes(CHUNK_MTU - 3))]


def test_unordered_chunks_reassemble() -> None:
    payload = random.Random(7).randbytes(100_000)
    sender, receiver = BinarySerializer(), BinarySerializer()
    frames = sender.encode({"blob": payload})
    random.Random(3).shuffle(frames)
    out: list[Any] = []
    for frame in frames:
        out += receiver.decode(frame)
    assert out == [{"blob": payload}]


def test_interleaved_chunk_sets_reassemble_independently() -> None:
    sender, receiver = BinarySerializer(), BinarySerializer()
    a, b = sender.encode(b"a" * 40000), sender.encode(b"b" * 40000)
    out: list[Any] = []
    for frame in [a[2], b[0], a[0], b[2], b[1], a[1]]:
        out += receiver.decode(frame)
    assert out == [b"b" * 40000, b"a" * 40000]


def test_chunk_bomb_total_is_refused_without_allocating() -> None:
    reassembler = Reassembler()
    with pytest.raises(ChunkError, match="exceeds the limit"):
        reassembler.add({"__peerData": 1, "n": 0, "data": b"x", "total": 5_000_000})
    assert reassembler.pending_bytes == 0


def test_outstanding_chunk_bytes_are_capped() -> None:
    reassembler = Reassembler(ChunkLimits(max_pending_bytes=50_000))
    for msg_id in range(1, 4):
        reassembler.add({"__peerData": msg_id, "n": 0, "data": bytes(16300), "total": 3})
    with pytest.raises(ChunkError, match="exceed 50000 bytes"):
        reassembler.add({"__peerData": 4, "n": 0, "data": bytes(16300), "total": 3})
    assert reassembler.pending_bytes <= 50_000


def test_too_many_pending_messages_are_refused() -> None:
    reassembler = Reassembler(ChunkLimits(max_pending_messages=2))
    reassembler.add({"__peerData": 1, "n": 0, "data": b"x", "total": 2})
    reassembler.add({"__peerData": 2, "n": 0, "data": b"x", "total": 2})
    with pytest.raises(ChunkError, match="too many"):
        reassembler.add({"__peerData": 3, "n": 0, "data": b"x", "total": 2})


@pytest.mark.parametrize(
    ("chunk", "needle"),
    [
        ({"__peerData": 1, "n": 5, "data": b"x", "total": 2}, "outside"),
        ({"__peerData": 1, "n": 0, "data": "text", "total": 2}, "binary"),
        ({"__peerData": 1, "n": 0, "data": b"x", "total": 0}, "invalid total"),
        ({"__peerData": 1, "n": 0, "data": b"x", "total": "3"}, "invalid total"),
        ({"__peerData": 1, "n": 0, "data": bytes(70000), "total": 2}, "exceeds"),
    ],
)
def test_malformed_chunks_raise(chunk: dict[str, Any], needle: str) -> None:
    with pytest.raises(ChunkError, match=needle):
        Reassembler().add(chunk)


def test_duplicate_and_inconsistent_chunks_raise_and_drop_the_set() -> None:
    reassembler = Reassembler()
    reassembler.add({"__peerData": 1, "n": 0, "data": b"x", "total": 3})
    with pytest.raises(ChunkError, match="duplicate"):
        reassembler.add({"__peerData": 1, "n": 0, "data": b"x", "total": 3})
    assert reassembler.pending_messages == 0
    reassembler.add({"__peerData": 2, "n": 0, "data": b"x", "total": 3})
    with pytest.raises(ChunkError, match="total changed"):
        reassembler.add({"__peerData": 2, "n": 1, "data": b"x", "total": 4})


def test_truncated_chunk_set_is_reported_at_timeout_and_at_close() -> None:
    ser = BinarySerializer(ChunkLimits(timeout=0.0))
    frames = ser.encode(bytes(50000))
    assert ser.decode(frames[0]) == []
    assert ser.expire() == ["chunked message 1 timed out: some chunks never arrived"]
    ser.decode(frames[1])
    assert ser.incomplete() == ["chunked message 1 never completed: some chunks never arrived"]


def test_chunk_frames_cover_all_bytes() -> None:
    data = bytes(range(256)) * 200
    parts = [unpack(f) for f in chunk_frames(data, 9)]
    assert b"".join(p["data"] for p in parts) == data
    assert {p["total"] for p in parts} == {len(parts)}


def test_binary_close_request_is_recognised() -> None:
    ser = BinarySerializer()
    frame = ser.close_frames()[0]
    assert frame == _hex("81 ba 5f 5f 70 65 65 72 44 61 74 61 81 b4 74 79 70 65 b5 63 6c 6f 73 65")
    assert ser.decode(frame) == [CLOSE]


def test_binary_rejects_text_frames() -> None:
    with pytest.raises(SerializationError, match="text frame"):
        BinarySerializer().decode("hello")


# ----------------------------------------------------------------------------- json


def test_json_sends_utf8_binary_frames_like_peerjs_15() -> None:
    assert JsonSerializer().encode({"a": 1, "b": "x"}) == [
        _hex("7b 22 61 22 3a 31 2c 22 62 22 3a 22 78 22 7d")
    ]


def test_json_sends_text_frames_for_old_peers() -> None:
    assert JsonSerializer(text_frames=True).encode({"a": 1}) == ['{"a":1}']


def test_json_accepts_binary_and_text_frames() -> None:
    ser = JsonSerializer()
    assert ser.decode(b'{"a":"\xc3\xa9"}') == [{"a": "é"}]
    assert ser.decode("[1,2,null]") == [[1, 2, None]]


def test_json_too_big_raises_message_too_big() -> None:
    with pytest.raises(MessageTooBig, match="Message too big for JSON channel"):
        JsonSerializer().encode("x" * CHUNK_MTU)


@pytest.mark.parametrize("frame", [b"{nope", b"\xff\xfe\x00", "not json"])
def test_json_garbage_raises(frame: bytes | str) -> None:
    with pytest.raises(SerializationError, match="invalid JSON"):
        JsonSerializer().decode(frame)


def test_json_refuses_bytes_and_nan() -> None:
    with pytest.raises(SerializationError):
        JsonSerializer().encode(b"x")
    with pytest.raises(SerializationError):
        JsonSerializer().encode(float("nan"))


def test_json_close_request() -> None:
    ser = JsonSerializer()
    assert ser.decode(ser.close_frames()[0]) == [CLOSE]


# ----------------------------------------------------------------------------- raw


def test_raw_passes_frames_through() -> None:
    ser = RawSerializer()
    assert ser.encode("hi") == ["hi"]
    assert ser.encode(bytearray(b"\x00\x01")) == [b"\x00\x01"]
    assert ser.decode("hi") == ["hi"] and ser.decode(b"\x00") == [b"\x00"]
    with pytest.raises(SerializationError):
        ser.encode({"a": 1})


# ----------------------------------------------------------------------------- MsgPack

MSGPACK_VECTORS: list[tuple[Any, str]] = [
    ({"a": 1}, "81 a1 61 01"),
    ("hi", "a2 68 69"),
    ([1, 2], "92 01 02"),
    (3.5, "cb 40 0c 00 00 00 00 00 00"),
    (True, "c3"),
    (None, "c0"),
    (b"\x01\x02\x03", "c4 03 01 02 03"),
    (2**32, "cf 00 00 00 01 00 00 00 00"),
    (dt.datetime(1970, 1, 1, tzinfo=dt.UTC), "d6 ff 00 00 00 00"),
    (
        {"__peerData": {"type": "close"}},
        "81 aa 5f5f7065657244617461 81 a4 74797065 a5 636c6f7365",
    ),
]


@pytest.mark.parametrize(
    ("value", "expected"), MSGPACK_VECTORS, ids=[repr(v)[:30] for v, _ in MSGPACK_VECTORS]
)
def test_msgpack_matches_js_encoder(value: Any, expected: str) -> None:
    assert b"".join(f for f in MsgPackSerializer().encode(value) if isinstance(f, bytes)) == _hex(
        expected
    )


@pytest.mark.parametrize(
    ("value", "expected"), MSGPACK_VECTORS[:-1], ids=[repr(v)[:30] for v, _ in MSGPACK_VECTORS[:-1]]
)
def test_msgpack_decodes_js_encoder_output(value: Any, expected: str) -> None:
    assert MsgPackSerializer().decode(_hex(expected)) == [value]


def test_msgpack_close_request() -> None:
    assert MsgPackSerializer().decode(_hex(MSGPACK_VECTORS[-1][1])) == [CLOSE]


def test_msgpack_is_cut_into_32k_pieces_and_streamed_back() -> None:
    sender, receiver = MsgPackSerializer(), MsgPackSerializer()
    frames = sender.encode(bytes(100_000)) + sender.encode("tail")
    assert [len(f) for f in frames[:4]] == [
        MSGPACK_PIECE,
        MSGPACK_PIECE,
        MSGPACK_PIECE,
        100_005 - 3 * MSGPACK_PIECE,
    ]
    out: list[Any] = []
    for frame in frames:
        out += receiver.decode(frame)
    assert out == [bytes(100_000), "tail"]


def test_msgpack_one_frame_may_hold_several_objects() -> None:
    assert MsgPackSerializer().decode(_hex("01 02 a1 61")) == [1, 2, "a"]


def test_msgpack_garbage_raises_and_stream_recovers() -> None:
    ser = MsgPackSerializer()
    with pytest.raises(SerializationError, match="invalid MsgPack"):
        ser.decode(b"\xc1\xc1")
    assert ser.decode(b"\x05") == [5]


def test_msgpack_oversized_claim_is_bounded() -> None:
    ser = MsgPackSerializer(ChunkLimits(max_message_bytes=100_000))
    ser.decode(b"\xc6\x7f\xff\xff\xff" + bytes(60_000))
    with pytest.raises(SerializationError):
        ser.decode(bytes(60_000))


# ----------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("name", "wire"),
    [
        ("default", "binary"),
        ("binary", "binary"),
        ("binary-utf8", "binary"),
        ("json", "json"),
        ("raw", "raw"),
        ("none", "raw"),
        ("MsgPack", "MsgPack"),
    ],
)
def test_serialization_names(name: str, wire: str) -> None:
    assert wire_name(name) == wire
    assert create_serializer(name).name == wire


def test_unknown_serialization_name_raises() -> None:
    with pytest.raises(UnknownSerialization, match="cbor"):
        create_serializer("cbor")
