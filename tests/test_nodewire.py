"""The node-to-node channel format (signalling/nodewire.py): entries cannot be forged by
anything an id, key or frame contains, and a message that does not add up is refused."""

from __future__ import annotations

import orjson
import pytest

from signalling import nodewire as w

NASTY = ["a\x00b", "1:[\"k\",\"x\",\"y\"]", "é\u2603\U0001f600", "]", "", "\\\"", "99:"]


def message(*runs: tuple[str, str, bool, list[str]]) -> str:
    head = [w.frames_entry(k, d, q, fs) for k, d, q, fs in runs]
    return w.pack(head, [f for *_, fs in runs for f in fs])


def test_frames_come_back_per_entry_in_order_whatever_they_contain() -> None:
    runs = [(key, dst, q, [f"{dst}{frame}{n}" for n, frame in enumerate(NASTY)])
            for key in NASTY[:3] for dst, q in ((NASTY[0], True), (NASTY[1], False))]
    assert w.unpack(message(*runs)) == [("M", k, d, q, fs) for k, d, q, fs in runs]


def test_moved_entries_and_an_empty_body() -> None:
    data = w.pack([w.moved_entry("k\x00", "id:1")], [])
    assert w.unpack(data) == [("k", "k\x00", "id:1", False, [])]


def test_a_frame_that_looks_like_a_head_is_only_a_frame() -> None:
    forged = w.pack([w.moved_entry("k", "victim")], [])
    data = message(("k", "dst", True, [forged, forged + forged]))
    assert w.unpack(data) == [("M", "k", "dst", True, [forged, forged + forged])]


def test_bare_json_arrays_of_earlier_versions_are_read() -> None:
    frame = '{"type":"OFFER","src":"a","dst":"b"}'
    data = orjson.dumps([["m", "k", "b", frame, "1"], ["m", "k", "c", frame, ""],
                         ["k", "k", "d"]]).decode()
    assert w.unpack(data) == [("M", "k", "b", True, [frame]), ("M", "k", "c", False, [frame]),
                              ("k", "k", "d", False, [])]


@pytest.mark.parametrize("data", [
    "", "12", "x:[]", "3:[]", "2:[]extra", "2:{}",
    message(("k", "d", True, ["abc"]))[:-1],  # cut short
    '20:[["M","k","d","1",[-1]]]x',  # a negative length
    '21:[["M","k","d","1",["3"]]]abc',  # a length that is not a number
    '12:[["Z","k"]]', '[["m","k"]]', "[1]", "not json",
])
def test_a_message_that_does_not_add_up_is_refused(data: str) -> None:
    with pytest.raises(w.UnreadableMessage):
        w.unpack(data)
