"""Pure protocol functions: parsing, frame building, id rule, handshake parameters."""

from __future__ import annotations

import json

import pytest

from signalling import protocol as p


def test_relay_frame_has_exactly_type_src_dst_payload_in_order() -> None:
    msg = p.parse_client_frame(
        '{"type":"OFFER","src":"SPOOF","dst":"B","extra":"x","payload":{"sdp":1}}')
    frame = p.relay_message(msg, "A")
    assert frame == '{"type":"OFFER","src":"A","dst":"B","payload":{"sdp":1}}'


def test_relay_frame_omits_payload_when_sender_gave_none() -> None:
    msg = p.parse_client_frame('{"type":"LEAVE","dst":"B"}')
    assert p.relay_message(msg, "A") == '{"type":"LEAVE","src":"A","dst":"B"}'


def test_relay_frame_keeps_an_explicit_null_payload() -> None:
    msg = p.parse_client_frame('{"type":"CANDIDATE","dst":"B","payload":null}')
    assert json.loads(p.relay_message(msg, "A"))["payload"] is None


def test_binary_frame_holding_json_is_parsed_like_text() -> None:
    assert p.parse_client_frame(b'{"type":"HEARTBEAT"}').type == "HEARTBEAT"


@pytest.mark.parametrize(("frame", "error"), [
    ("not json", p.Errors.NOT_JSON),
    (b"\xff\xfe", p.Errors.NOT_JSON),
    ("[1,2]", p.Errors.NOT_OBJECT),
    ('"OFFER"', p.Errors.NOT_OBJECT),
    ("{}", p.Errors.NO_TYPE),
    ('{"type":5}', p.Errors.NO_TYPE),
    ('{"type":""}', p.Errors.NO_TYPE),
    ('{"type":"OFFER","dst":7}', p.Errors.BAD_DST),
    ('{"type":"OFFER","dst":["B"]}', p.Errors.BAD_DST),
])
def test_malformed_frames_raise_protocol_error_with_precise_text(frame: str | bytes,
                                                                  error: str) -> None:
    with pytest.raises(p.ProtocolError) as info:
        p.parse_client_frame(frame)
    assert str(info.value) == error


def test_unknown_type_parses_so_the_router_can_ignore_it() -> None:
    assert p.parse_client_frame('{"type":"FOO"}').type == "FOO"


def test_exact_peerjs_server_frames() -> None:
    assert p.OPEN_FRAME == '{"type":"OPEN"}'
    assert p.ID_TAKEN_FRAME == '{"type":"ID-TAKEN","payload":{"msg":"ID is taken"}}'
    assert p.error_frame(p.Errors.INVALID_WS_PARAMETERS) == (
        '{"type":"ERROR","payload":{"msg":"No id, token, or key supplied to websocket '
        'server"}}')
    assert p.expire_frame("D", "A") == '{"type":"EXPIRE","src":"D","dst":"A"}'
    assert p.INVALID_KEY_FRAME.startswith('{"type":"INVALID-KEY"')


@pytest.mark.parametrize("peer_id", ["abc", "a-b_c d", "0", "fa81e615-6a51-4443-b46a-370a6f995133"])
def test_valid_ids(peer_id: str) -> None:
    assert p.is_valid_id(peer_id)


@pytest.mark.parametrize("peer_id", ["", "-a", "a-", "a  b", "héllo", "a/b", "a--b"])
def test_invalid_ids(peer_id: str) -> None:
    assert not p.is_valid_id(peer_id)


def test_handshake_decodes_percent_escapes_and_plus() -> None:
    hs = p.parse_handshake(b"key=peerjs&id=h%C3%A9llo+w%2Frld%3F&token=t&version=1.5.5")
    assert hs == p.Handshake("peerjs", "héllo w/rld?", "t", "1.5.5")


@pytest.mark.parametrize("query", [b"", b"key=peerjs&id=A", b"key=peerjs&id=A&token=",
                                   b"id=A&token=t", b"key=&id=A&token=t"])
def test_handshake_missing_or_empty_parameter_is_none(query: bytes) -> None:
    assert p.parse_handshake(query) is None


def test_handshake_without_version_is_fine() -> None:
    hs = p.parse_handshake("key=k&id=i&token=t")
    assert hs is not None and hs.version is None


def test_client_and_server_spell_the_protocol_the_same() -> None:
    # client/ must stay importable without the server, so it keeps its own copy of the
    # names; this pins the two copies together.
    from peerhub_client import protocol as client_protocol

    assert {m.name: m.value for m in client_protocol.MessageType} == {
        m.name: m.value for m in p.MessageType}
    for peer_id in ["abc", "a-b_c d", "", "-a", "a  b", "héllo", "x" * 50]:
        if peer_id:
            assert client_protocol.is_valid_id(peer_id) == p.is_valid_id(peer_id)


def test_the_plain_query_shortcut_reads_what_parse_qs_reads() -> None:
    # first_values splits a query without "%" or "+" itself: on every query of up to
    # five characters from this alphabet it must agree with parse_qs's first values.
    from itertools import product
    from urllib.parse import parse_qs

    alphabet = "a=&;%+"
    for length in range(6):
        for chars in product(alphabet, repeat=length):
            query = "".join(chars)
            expected = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
            assert p.first_values(query) == expected, query
    assert p.first_values("key=peerjs&id=a&id=b&token=") == {
        "key": "peerjs", "id": "a", "token": ""}
