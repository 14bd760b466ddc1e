"""Proxy headers done right (issue 13, item 5): the client address is the first untrusted
one from the right of X-Forwarded-For; a client behind the shipped nginx site cannot
pick its own; unreadable headers get a clean 400."""

from __future__ import annotations

import base64
import dataclasses
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peerhub.proxy import (
    BadProxyHeader,
    client_address,
    forwarded_scheme,
    from_headers,
    parse_trusted,
)
from signalling.protocol import Errors
from tests.nginx import nginx_binary, running_nginx
from tests.test_apikeys_helpers import StartServer, query
from tests.test_front import Raw, upgrade_request, ws_target
from tests.waiting import until
from tests.wsclient import closed_with, open_socket, recv

LOCAL = parse_trusted("127.0.0.0/8, ::1")
CHAIN = parse_trusted("10.0.0.0/8, 192.168.1.1")


def addr(peer: str, xff: list[bytes], real: list[bytes] | None = None,
         trusted: object = CHAIN) -> str:
    return client_address(peer, xff, real or [], trusted)  # type: ignore[arg-type]


def test_the_client_is_the_first_untrusted_address_from_the_right() -> None:
    assert addr("10.0.0.5", [b"6.6.6.6, 203.0.113.7"]) == "203.0.113.7"
    assert addr("10.0.0.5", [b"6.6.6.6, 203.0.113.7, 10.1.2.3"]) == "203.0.113.7"
    assert addr("10.0.0.5", [b"6.6.6.6", b"203.0.113.7, 192.168.1.1"]) == "203.0.113.7"
    assert addr("10.0.0.5", [b"[2001:db8::1]:443"]) == "2001:db8::1"
    assert addr("10.0.0.5", [b"203.0.113.9:5555"]) == "203.0.113.9"
    assert addr("10.0.0.5", [b"10.0.0.7, 10.0.0.6"]) == "10.0.0.7"  # all trusted
    assert addr("10.0.0.5", [], [b"203.0.113.8"]) == "203.0.113.8"
    assert addr("10.0.0.5", [b"203.0.113.7"], [b"6.6.6.6"]) == "203.0.113.7"
    assert addr("10.0.0.5", []) == "10.0.0.5"
    assert addr("::ffff:10.0.0.5", [b"203.0.113.7"]) == "203.0.113.7"  # v4-mapped peer


def test_an_untrusted_peer_is_the_client_whatever_it_writes() -> None:
    assert addr("203.0.113.50", [b"1.2.3.4"], [b"5.6.7.8"]) == "203.0.113.50"
    assert addr("203.0.113.50", [b"\xff\xfe not even ascii"]) == "203.0.113.50"
    assert addr("10.0.0.5", [b"1.2.3.4"], trusted=None) == "10.0.0.5"
    assert from_headers("203.0.113.50", [(b"x-forwarded-proto", b"https")], CHAIN) == (
        "203.0.113.50", None)


@pytest.mark.parametrize("xff", [b"\xff1.2.3.4", b"1.2.3.4, not-an-address", b"1.2.3.4,,x",
                                 b"9" * 5000, "\u00e9".encode()])
def test_unreadable_headers_from_a_trusted_peer_raise_the_named_error(xff: bytes) -> None:
    with pytest.raises(BadProxyHeader):
        addr("10.0.0.5", [xff])


def test_left_entries_beyond_the_client_are_never_read() -> None:
    assert addr("10.0.0.5", [b"garbage!!, 203.0.113.7"]) == "203.0.113.7"


def test_scheme_only_from_a_trusted_peer() -> None:
    assert forwarded_scheme("10.0.0.5", [b"http, https"], CHAIN) == "https"
    assert forwarded_scheme("6.6.6.6", [b"https"], CHAIN) is None
    assert forwarded_scheme("10.0.0.5", [b"gopher"], CHAIN) is None


def test_trusted_proxies_parse_addresses_and_networks() -> None:
    trusted = parse_trusted("10.0.0.1, 192.168.0.0/16, ::1")
    assert trusted.trusts(parse_ip("192.168.44.2")) and trusted.trusts(parse_ip("::1"))
    assert not trusted.trusts(parse_ip("10.0.0.2"))
    with pytest.raises(ValueError):
        parse_trusted("10.0.0.1, not-a-network")


def parse_ip(text: str) -> object:
    import ipaddress

    return ipaddress.ip_address(text)


@given(left=st.lists(st.binary(max_size=20), max_size=5))
def test_nothing_a_client_prepends_changes_the_answer(left: list[bytes]) -> None:
    # Behind a trusted proxy that appended the client's real address, anything the
    # client put to the left of it is ignored (or, if it holds a comma, never reached).
    xff = b",".join([*left, b"203.0.113.7"]) if not any(b"," in x for x in left) else None
    if xff is not None and xff.isascii():
        assert addr("10.0.0.5", [xff]) == "203.0.113.7"


async def open_from(server: object, peer_id: str, xff: str) -> object:
    return await open_socket(server, peer_id,  # type: ignore[arg-type]
                             additional_headers={"X-Forwarded-For": xff})


async def test_forged_addresses_from_an_untrusted_peer_count_as_that_peer(
        start_server: StartServer) -> None:
    with start_server(TRUSTED_PROXIES="10.9.9.9", MAX_SOCKETS_PER_IP="2") as server:
        first = await open_from(server, "u1", "203.0.113.1")
        second = await open_from(server, "u2", "203.0.113.2")
        for ws in (first, second):
            assert await recv(ws) == {"type": "OPEN"}  # type: ignore[arg-type]
        third = await open_from(server, "u3", "203.0.113.3")
        assert await recv(third) == {  # type: ignore[arg-type]
            "type": "ERROR", "payload": {"msg": Errors.IP_SOCKETS}}
        assert await closed_with(third) == 1008  # type: ignore[arg-type]
        rows = await until(lambda: query(
            server, "SELECT DISTINCT remote_addr FROM signalling_peersession"), in_thread=True)
        assert rows == [("127.0.0.1",)]
        for ws in (first, second):
            await ws.close()  # type: ignore[attr-defined]


async def test_behind_a_trusted_proxy_the_right_end_counts(start_server: StartServer) -> None:
    with start_server(PROXY_HEADERS="true", MAX_SOCKETS_PER_IP="2") as server:
        socks = [await open_from(server, f"t{n}", f"6.6.6.{n}, 203.0.113.7")
                 for n in range(3)]
        assert [await recv(ws) for ws in socks[:2]] == [{"type": "OPEN"}] * 2  # type: ignore
        assert (await recv(socks[2]))["payload"]["msg"] == Errors.IP_SOCKETS  # type: ignore
        rows = await until(lambda: query(
            server, "SELECT DISTINCT remote_addr FROM signalling_peersession"), in_thread=True)
        assert rows == [("203.0.113.7",)]
        # Bad bytes from the trusted hop: a clean 400, on the websocket and on HTTP.
        for target in (ws_target(server, "badxff"), "/peerjs/id"):
            raw = await Raw.connect(server)
            extra = "X-Forwarded-For: 1.2.3.4, \xff\xfe\r\n"
            request = (upgrade_request(target, base64.b64encode(os.urandom(16)))
                       if "peerjs?" in target else
                       f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            request = request[:-2] + extra.encode("latin-1") + b"\r\n"
            await raw.send(request)
            status, _, _ = await raw.read_head()
            assert status == 400, target
            raw.close()
        for ws in socks:
            await ws.close()  # type: ignore[attr-defined]
        assert "Traceback" not in server.log()


async def test_behind_the_shipped_nginx_a_client_cannot_pick_its_address(
        start_server: StartServer, tmp_path: Path) -> None:
    if nginx_binary() is None:
        from tests.conftest import missing

        missing("nginx is not installed (apt-get install nginx-light)")
    with start_server(PROXY_HEADERS="true", MAX_SOCKETS_PER_IP="2") as server:
        with running_nginx(tmp_path / "nginx", [server.port]) as port:
            front = dataclasses.replace(server, port=port)
            socks = [await open_from(front, f"n{n}", f"198.51.100.{n}") for n in range(3)]
            assert [await recv(ws) for ws in socks[:2]] == [{"type": "OPEN"}] * 2  # type: ignore
            assert (await recv(socks[2]))["payload"]["msg"] == Errors.IP_SOCKETS  # type: ignore
            for ws in socks:
                await ws.close()  # type: ignore[attr-defined]
