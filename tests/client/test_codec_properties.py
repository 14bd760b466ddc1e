"""Hypothesis round trips for every serialization."""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from peerhub_client.binarypack import BinaryPackError, pack, unpack
from peerhub_client.serializers import (
    BinarySerializer,
    JsonSerializer,
    MsgPackSerializer,
    RawSerializer,
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=8) | st.dictionaries(st.text(max_size=8), inner, max_size=8)
    ),
    max_leaves=30,
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=6), inner, max_size=6)
    ),
    max_leaves=20,
)


@given(values)
def test_binarypack_round_trip(value: Any) -> None:
    assert unpack(pack(value)) == value


@given(st.binary(min_size=0, max_size=200_000), st.randoms())
@settings(max_examples=25, deadline=None)
def test_binary_chunked_round_trip_in_any_order(blob: bytes, rnd: Any) -> None:
    frames = BinarySerializer().encode({"blob": blob})
    rnd.shuffle(frames)
    receiver = BinarySerializer()
    out: list[Any] = []
    for frame in frames:
        out += receiver.decode(frame)
    assert out == [{"blob": blob}]


@given(json_values)
def test_json_round_trip(value: Any) -> None:
    ser = JsonSerializer()
    out: list[Any] = []
    for frame in ser.encode(value):
        out += ser.decode(frame)
    assert out == [value]


@given(st.text() | st.binary())
def test_raw_round_trip(value: str | bytes) -> None:
    ser = RawSerializer()
    assert [v for f in ser.encode(value) for v in ser.decode(f)] == [value]


@given(st.lists(values, max_size=5), st.integers(min_value=1, max_value=64))
def test_msgpack_stream_round_trip_across_arbitrary_frame_cuts(items: list[Any], cut: int) -> None:
    sender, receiver = MsgPackSerializer(), MsgPackSerializer()
    stream = b"".join(f for item in items for f in sender.encode(item) if isinstance(f, bytes))
    out: list[Any] = []
    for i in range(0, len(stream), cut):
        out += receiver.decode(stream[i : i + cut])
    assert out == items


@given(st.binary(max_size=300))
def test_unpack_of_arbitrary_bytes_never_crashes_unexpectedly(data: bytes) -> None:
    with contextlib.suppress(BinaryPackError):
        unpack(data)
