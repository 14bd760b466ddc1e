"""Signed tokens and TURN credentials: pure vectors, then a live server enforcing them."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest

from signalling.protocol import Errors
from signalling.tokens import mint_token, turn_credentials, verify_token
from tests.servers import LiveServer, manage
from tests.wsclient import closed_with, join, open_socket, recv

StartServer = Callable[..., AbstractContextManager[LiveServer]]


def test_token_vector_matches_openssl() -> None:
    # printf 'peerjs\nalice\n1700000000' | openssl dgst -sha256 -hmac k -binary | base64url
    assert mint_token("k", "peerjs", "alice", 1700000000) == (
        "v1.1700000000.qegtzyiansjGOHraSXgXpF99p6j3s4oDmfJYK_bbPBg")


def test_turn_credentials_vector_matches_openssl() -> None:
    # printf '1700000000:alice' | openssl dgst -sha1 -hmac s3cret -binary | base64
    assert turn_credentials("s3cret", "alice", 1700000000) == (
        "1700000000:alice", "TtElzSjT0GdnTQ9xdcRNxx96yQs=")


@pytest.mark.parametrize(("secret", "key", "peer", "token_of", "now", "ok"), [
    ("s", "k", "alice", ("s", "k", "alice", 200), 100, True),
    ("s", "k", "alice", ("s", "k", "alice", 200), 201, False),   # expired
    ("s", "k", "alice", ("s", "k", "bob", 200), 100, False),     # another id
    ("s", "k", "alice", ("s", "k2", "alice", 200), 100, False),  # another key
    ("s", "k", "alice", ("t", "k", "alice", 200), 100, False),   # another secret
    ("", "k", "alice", ("", "k", "alice", 200), 100, False),     # no secret: nothing valid
])
def test_verify_token(secret: str, key: str, peer: str, token_of: tuple[str, str, str, int],
                      now: float, ok: bool) -> None:
    assert verify_token(secret, key, peer, mint_token(*token_of), now) is ok


@pytest.mark.parametrize("token", ["", "v1", "v1.abc.def", "v2.99999999999.x",
                                   "v1.9999999999999999.x", "random-token"])
def test_malformed_tokens_are_refused(token: str) -> None:
    assert not verify_token("s", "k", "alice", token, 0)


async def test_key_requiring_signed_tokens_admits_only_minted_ids(
        peerhub_server: LiveServer) -> None:
    key = manage(peerhub_server, "createkey", "signed")
    secret = manage(peerhub_server, "rotatesecret", key, "--require")
    assert len(secret) >= 32
    token = manage(peerhub_server, "minttoken", key, "alice")
    alice = await join(peerhub_server, "alice", token=token, key=key)
    for peer_id, bad in (("mallory", "anything"), ("mallory", token),
                         ("bob", mint_token(secret, key, "bob", int(time.time()) - 5))):
        ws = await open_socket(peerhub_server, peer_id, token=bad, key=key)
        assert await recv(ws) == {"type": "ERROR", "payload": {"msg": Errors.INVALID_TOKEN}}
        assert await closed_with(ws) == 1008
    # Taking over alice needs alice's token, which only her backend could mint.
    thief = await open_socket(peerhub_server, "alice", token="guess", key=key)
    assert (await recv(thief))["type"] == "ERROR"
    await alice.close()


def get_json(url: str) -> tuple[int, object]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


async def test_ice_route_gives_stun_and_short_lived_turn(start_server: StartServer) -> None:
    with start_server(TURN_URLS="turn:turn.example:3478", TURN_SECRET="s3cret",
                      TURN_TTL="600") as server:
        status, body = get_json(f"{server.base_url}peerjs/ice?id=alice")
        assert status == 200 and isinstance(body, dict)
        [turn] = body["iceServers"]
        expiry, _, peer = turn["username"].partition(":")
        assert peer == "alice" and 590 <= int(expiry) - time.time() <= 610
        assert (turn["username"], turn["credential"]) == turn_credentials(
            "s3cret", "alice", int(expiry))
        assert turn["urls"] == ["turn:turn.example:3478"]
        assert get_json(f"{server.base_url}nosuchkey/ice?id=a")[0] == 401


async def test_ice_route_without_turn_gives_only_the_keys_stun(
        peerhub_server: LiveServer) -> None:
    status, body = get_json(f"{peerhub_server.base_url}peerjs/ice?id=alice")
    assert (status, body) == (200, {"iceServers": [], "ttl": 86400})
