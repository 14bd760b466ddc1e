"""BinaryPack against every test vector in peerjs-protocol.md §4.1 (made by the shipped JS)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from peerhub_client.binarypack import BinaryPackError, pack, unpack

# (value, hex as the JS encoder wrote it)
VECTORS: list[tuple[Any, str]] = [
    ({"a": 1}, "81 b1 61 01"),
    ("hi", "b2 68 69"),
    ([1, 2], "92 01 02"),
    (3.5, "cb 40 0c 00 00 00 00 00 00"),
    (True, "c3"),
    (False, "c2"),
    (None, "c0"),
    (0, "00"),
    (127, "7f"),
    (128, "cc 80"),
    (255, "cc ff"),
    (256, "cd 01 00"),
    (-1, "ff"),
    (-5, "fb"),
    (-32, "e0"),
    (-33, "d0 df"),
    (-128, "d0 80"),
    (-129, "d1 ff 7f"),
    (-200, "d1 ff 38"),
    (65536, "ce 00 01 00 00"),
    (70000, "ce 00 01 11 70"),
    (2**31, "ce 80 00 00 00"),
    (4294967295, "ce ff ff ff ff"),
    (-32769, "d2 ff ff 7f ff"),
    (-(2**31), "d2 80 00 00 00"),
    (4294967296, "d3 00 00 00 01 00 00 00 00"),
    (2**53, "d3 00 20 00 00 00 00 00 00"),
    (-1.5, "cb bf f8 00 00 00 00 00 00"),
    (0.1, "cb 3f b9 99 99 99 99 99 9a"),
    ("", "b0"),
    ("é", "b2 c3 a9"),
    ("€", "b3 e2 82 ac"),
    ("😀", "b4 f0 9f 98 80"),
    ("abcdefghijklmnop", "d8 00 10 " + " ".join(f"{c:02x}" for c in b"abcdefghijklmnop")),
    (b"\x01\x02\x03", "a3 01 02 03"),
    (b"", "a0"),
    (bytes(16), "da 00 10 " + " ".join(["00"] * 16)),
    ([], "90"),
    ({}, "80"),
    ({"x": [True, None, "s"], "y": {"z": -5}}, "82 b1 78 93 c3 c0 b1 73 b1 79 81 b1 7a fb"),
    (
        {"type": "chat", "text": "héllo"},
        "82 b4 74 79 70 65 b4 63 68 61 74 b4 74 65 78 74 b6 68 c3 a9 6c 6c 6f",
    ),
    (
        {"__peerData": {"type": "close"}},
        "81 ba 5f 5f 70 65 65 72 44 61 74 61 81 b4 74 79 70 65 b5 63 6c 6f 73 65",
    ),
]


def _hex(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


@pytest.mark.parametrize(("value", "expected"), VECTORS, ids=[repr(v)[:40] for v, _ in VECTORS])
def test_pack_matches_js_encoder(value: Any, expected: str) -> None:
    assert pack(value) == _hex(expected)


@pytest.mark.parametrize(("value", "expected"), VECTORS, ids=[repr(v)[:40] for v, _ in VECTORS])
def test_unpack_reads_js_encoder_output(value: Any, expected: str) -> None:
    assert unpack(_hex(expected)) == value


def test_sixteen_element_array_uses_array16_header() -> None:
    packed = pack(list(range(16)))
    assert packed[:3] == _hex("dc 00 10")
    assert unpack(packed) == list(range(16))


def test_sixteen_key_map_uses_map16_header() -> None:
    value = {f"k{i}": i for i in range(16)}
    packed = pack(value)
    assert packed[:3] == _hex("de 00 10")
    assert unpack(packed) == value


def test_undefined_tag_decodes_as_none() -> None:
    assert unpack(b"\xc1") is None


def test_negative_int64_decodes_exactly_where_js_loses_precision() -> None:
    assert unpack(_hex("d3 ff ff ff ff 7f ff ff ff")) == -2147483649


def test_uint64_and_float32_decode() -> None:
    assert unpack(_hex("cf 00 00 00 01 00 00 00 00")) == 2**32
    assert unpack(_hex("ca 3f c0 00 00")) == 1.5


def test_long_strings_and_raw_use_32bit_lengths() -> None:
    text = "x" * 70000
    assert pack(text)[:5] == _hex("d9 00 01 11 70")
    assert unpack(pack(text)) == text
    blob = bytes(range(256)) * 300
    assert pack(blob)[:5] == _hex("db 00 01 2c 00")
    assert unpack(pack(blob)) == blob


def test_integral_floats_pack_like_js_numbers() -> None:
    assert pack(3.0) == pack(3)
    assert pack(-0.0) == b"\x00"
    assert pack(4294967296.0) == _hex("d3 00 00 00 01 00 00 00 00")


def test_non_finite_floats_pack_as_float64() -> None:
    assert unpack(pack(math.inf)) == math.inf
    assert math.isnan(unpack(pack(math.nan)))


def test_bytearray_and_memoryview_pack_as_raw() -> None:
    assert pack(bytearray(b"\x01\x02")) == _hex("a2 01 02")
    assert pack(memoryview(b"\x01\x02")) == _hex("a2 01 02")


def test_tuple_packs_as_array() -> None:
    assert pack((1, 2)) == _hex("92 01 02")


@pytest.mark.parametrize("value", [{1, 2}, object(), 2**64, -(2**63) - 1])
def test_unsupported_values_raise(value: Any) -> None:
    with pytest.raises(BinaryPackError):
        pack(value)


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"", "truncated"),
        (b"\xb5ab", "truncated"),
        (b"\xcd\x01", "truncated"),
        (b"\xdd\xff\xff\xff\xff", "claims"),
        (b"\xdb\xff\xff\xff\xff", "truncated"),
        (b"\xc4", "unknown tag"),
        (b"\xd5", "unknown tag"),
        (b"\x01\x02", "trailing"),
        (b"\xb2\xff\xfe", "UTF-8"),
        (b"\x81\x91\x01\x01", "scalar"),
        (b"\x91" * 10000 + b"\x01", "deeply"),
    ],
)
def test_malformed_data_raises_binarypack_error(data: bytes, needle: str) -> None:
    with pytest.raises(BinaryPackError, match=needle):
        unpack(data)
