"""Peer-level behaviour against a private reference server: key, path, expiry, restarts."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from peerhub_client import Peer, PeerError

from .conftest import ReferenceServer
from .helpers import collector, next_event, peers, wait


async def test_wrong_key_gives_server_error_and_destroys(
    private_reference_server: ReferenceServer,
) -> None:
    srv = private_reference_server
    peer = Peer("k1", host=srv.host, port=srv.port, path=srv.path, key="wrong")
    with pytest.raises(PeerError) as info:
        await wait(peer.ready())
    assert (info.value.type, info.value.message) == ("server-error", "Invalid key provided")
    assert peer.destroyed
    await peer.wait_closed()


async def test_custom_path_and_key_work(private_reference_server: ReferenceServer) -> None:
    async with peers(private_reference_server, None, "path-peer", key="sekrit") as (a, b):
        assert a.open and b.open
        conn = await wait(a.connect("path-peer"))
        assert conn.open


async def test_wrong_path_gives_server_error_with_hint(
    private_reference_server: ReferenceServer,
) -> None:
    srv = private_reference_server
    peer = Peer(host=srv.host, port=srv.port, path="/", key="sekrit")
    with pytest.raises(PeerError) as info:
        await wait(peer.ready())
    assert info.value.type == "server-error"
    assert info.value.message.startswith(
        "Could not get an ID from the server. If you passed in a `path`"
    )


async def test_unreachable_server_gives_socket_error() -> None:
    from tests.servers import free_port

    peer = Peer("lonely", host="127.0.0.1", port=free_port())
    errors = collector(peer, "error")
    with pytest.raises(PeerError) as info:
        await wait(peer.ready())
    assert info.value.type == "socket-error" and [e.type for e in errors] == ["socket-error"]
    assert peer.destroyed


async def test_connecting_to_an_absent_peer_gives_peer_unavailable(
    private_reference_server: ReferenceServer,
) -> None:
    async with peers(private_reference_server, "caller", key="sekrit") as (caller,):
        errors = collector(caller, "error")
        conn = caller.connect("nobody-home")
        with pytest.raises(PeerError) as info:
            await wait(conn)
        assert info.value.type == "peer-unavailable"
        assert [(e.type, e.message) for e in errors] == [
            ("peer-unavailable", "Could not connect to peer nobody-home")
        ]
        assert caller.open


async def test_server_restart_gives_network_error_then_reconnect_with_same_id(
    private_reference_server: ReferenceServer,
) -> None:
    srv = private_reference_server
    async with peers(srv, "survivor", key="sekrit") as (peer,):
        errors: list[Any] = collector(peer, "error")
        disconnected = next_event(peer, "disconnected")
        srv.stop()
        await wait(disconnected)
        assert [(e.type, e.message) for e in errors] == [("network", "Lost connection to server.")]
        await asyncio.to_thread(srv.start)
        peer.reconnect()
        await wait(peer.ready())
        assert peer.open and peer.id == "survivor"
        async with peers(srv, None, key="sekrit") as (other,):
            conn = await wait(other.connect("survivor"))
            assert conn.open


@pytest.mark.parametrize("ping_interval", [0.3])
async def test_heartbeats_keep_the_peer_registered_past_the_alive_timeout(
    node: str, tmp_path: Any, ping_interval: float
) -> None:
    srv = ReferenceServer(node, tmp_path, extra=["--alive_timeout", "1200"])
    await asyncio.to_thread(srv.start)
    try:
        async with peers(srv, "beating", ping_interval=ping_interval) as (peer,):
            errors = collector(peer, "error")
            await asyncio.sleep(3)  # the server checks every 300 ms
            assert peer.open and errors == []
            async with peers(srv, None) as (other,):
                conn = await wait(other.connect("beating"))
                assert conn.open
    finally:
        srv.stop()


async def test_without_heartbeats_the_server_drops_the_peer(node: str, tmp_path: Any) -> None:
    srv = ReferenceServer(node, tmp_path, extra=["--alive_timeout", "1200"])
    await asyncio.to_thread(srv.start)
    try:
        async with peers(srv, "silent", ping_interval=60) as (peer,):
            disconnected = next_event(peer, "disconnected")
            errors = collector(peer, "error")
            await wait(disconnected, 5)
            assert [e.type for e in errors] == ["network"]
    finally:
        srv.stop()
