"""Tokens never reach the log (issue 13, item 3) and every token is parsed strictly
(item 4): a live server is driven through every route and transport with tokens in
them, bad requests included, then its whole output is searched for them."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from peerhub.logredact import redact_path
from signalling.protocol import Errors
from signalling.tokens import is_ascii_number, mint_token, verify_token
from tests.servers import LiveServer, manage
from tests.test_apikeys_helpers import StartServer, make_keys
from tests.test_front import Raw
from tests.wsclient import closed_with, open_socket, recv

UNICODE_DIGITS = ["\u00b2", "\u2460", "\u0661\u0662", "\uff11", "\u00b9\u00b2\u00b3", "\U0001d7d9"]


def http(server: LiveServer, method: str, path: str, body: bytes | None = None,
         read: int = -1) -> tuple[int, bytes]:
    request = urllib.request.Request(
        f"http://{server.host}:{server.port}{quote(path, safe='/?=&%;')}",
                                     data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.read(read)
    except urllib.error.HTTPError as err:
        return err.code, err.read()


async def raw_http(server: LiveServer, request: bytes) -> bytes:
    raw = await Raw.connect(server)
    await raw.send(request)
    try:
        return await raw.closed_within(5)
    finally:
        raw.close()


@pytest.mark.parametrize("digits", UNICODE_DIGITS)
def test_unicode_digits_are_not_an_expiry(digits: str) -> None:
    assert not is_ascii_number(digits)
    assert not verify_token("s", "k", "alice", f"v1.{digits}.sig", 0)


@settings(max_examples=300, deadline=None)
@given(token=st.text(max_size=40) | st.builds(
    lambda e, s: f"v1.{e}.{s}", st.text(max_size=14), st.text(max_size=44)))
def test_any_token_text_verifies_to_a_boolean(token: str) -> None:
    assert verify_token("secret", "k", "alice", token, 0) in (True, False)
    good = mint_token("secret", "k", "alice", 2_000_000_000)
    assert verify_token("secret", "k", "alice", good, 0)


@settings(max_examples=300, deadline=None)
@given(prefix=st.text(max_size=30), token=st.text(
    alphabet=st.characters(blacklist_characters="&;#\"' \t\r\n\x0b\x0c\x1c\x1d\x1e\x1f\x85"
                           "\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
                           "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"),
    min_size=6, max_size=30), sep=st.sampled_from(["?", "&", ";"]),
    name=st.sampled_from(["token", "TOKEN", "tok%65n", "%74oken", "token%3D"]))
def test_redact_path_hides_a_query_token_in_any_position(prefix: str, token: str, sep: str,
                                                         name: str) -> None:
    eq = "" if name.endswith("%3D") else "="
    line = f"GET /peerjs{sep}{prefix.replace(token, '')}&{name}{eq}{token}&after=1 HTTP/1.1"
    assert token not in redact_path(line).replace(prefix.replace(token, ""), "")


async def exercise_every_route(server: LiveServer, token: str, signed: str) -> None:
    """Every route and transport, with ``token`` (peerjs key) or ``signed`` (signedkey)."""
    # The websocket: accepted, unknown key, bad signed tokens (Unicode digits), other path.
    ws = await open_socket(server, "logpeer", token)
    assert await recv(ws) == {"type": "OPEN"}
    bad_key = await open_socket(server, "p", token, key="nosuchkey")
    assert (await recv(bad_key))["type"] == "INVALID-KEY"
    for digits in UNICODE_DIGITS[:3]:
        forged = await open_socket(server, "p", f"v1.{digits}.{token}", key="signedkey")
        assert await recv(forged) == {"type": "ERROR", "payload": {"msg": Errors.INVALID_TOKEN}}
        assert await closed_with(forged) == 1008
    good = await open_socket(server, "signedpeer", signed, key="signedkey")
    assert await recv(good) == {"type": "OPEN"}
    with pytest.raises(InvalidStatus):
        await connect(f"ws://{server.host}:{server.port}/other?key=peerjs&token={token}")
    # /ice: token anywhere in the query, its name encoded, signed and bad signed tokens.
    for query in (f"id=a&token={token}", f"token={token}&id=a", f"id=a&tok%65n={token}"):
        assert (await asyncio.to_thread(http, server, "GET", f"/peerjs/ice?{query}"))[0] == 200
    assert (await asyncio.to_thread(
        http, server, "GET", f"/signedkey/ice?id=signedpeer&token={signed}"))[0] == 200
    for digits in UNICODE_DIGITS:
        status, body = await asyncio.to_thread(
            http, server, "GET", f"/signedkey/ice?id=a&token=v1.{digits}.{token}")
        assert (status, body.decode()) == (401, Errors.INVALID_TOKEN)
    # 0.3.x: the stream (read its start, then hang up), signals, a bad one, a wrong method.
    status, start = await asyncio.to_thread(http, server, "POST", f"/peerjs/legacy/{token}/id",
                                            b"", 2049)
    assert status == 200 and start.startswith(b"0" * 2048)
    offer = json.dumps({"type": "OFFER", "dst": "logpeer", "payload": "x"}).encode()
    assert (await asyncio.to_thread(http, server, "POST", f"/peerjs/legacy/{token}/offer",
                                    offer))[0] in (200, 401)
    assert (await asyncio.to_thread(http, server, "POST", f"/peerjs/logpeer/{token}/offer",
                                    b"{not json"))[0] == 400
    assert (await asyncio.to_thread(http, server, "GET", f"/peerjs/logpeer/{token}/offer"))[0] \
        == 405
    for digits in UNICODE_DIGITS[:2]:
        assert (await asyncio.to_thread(http, server, "POST",
                                        f"/signedkey/p/v1.{digits}.{token}/id", b""))[0] == 401
    # A plain GET of the websocket URL, and malformed requests with the token in them.
    assert (await asyncio.to_thread(
        http, server, "GET", f"/peerjs?key=peerjs&id=a&token={token}"))[0] < 500
    await raw_http(server, f"GET /peerjs?key=peerjs&id=a&token={token} HTTP/1.1\r\n"
                           "Host: x\r\nbroken header line\r\n\r\n".encode())
    await raw_http(server, f"GET /peerjs?token={token}\r\n\r\n".encode())
    await raw_http(server, f"POST /peerjs/a/{token}/offer HTTP/1.1\r\nHost: x\r\n"
                           "Content-Length: 5\r\nConnection: close\r\n\r\n\xff\xfe{]x".encode(
                               "latin-1"))
    for sock in (ws, good):
        await sock.close()


async def test_no_token_reaches_the_log_on_any_route(start_server: StartServer,
                                                    tmp_path: Path) -> None:
    token = "tok" + uuid.uuid4().hex
    with start_server(LOG_LEVEL="INFO") as server:
        make_keys(server, {"name": "signed", "key": "signedkey",
                           "require_signed_tokens": True})
        manage(server, "rotatesecret", "signedkey")
        signed = manage(server, "minttoken", "signedkey", "signedpeer").splitlines()[-1]
        await exercise_every_route(server, token, signed)
        assert server.process.poll() is None
        server.stop()
        log = server.log()
    assert "GET /peerjs/ice?id=a&token=***" in log  # the access log did see the requests
    assert "Traceback" not in log
    signature = signed.rsplit(".", 1)[-1]
    for secret in (token, signed, signature):
        assert secret not in log, [line for line in log.splitlines() if secret in line][:3]
