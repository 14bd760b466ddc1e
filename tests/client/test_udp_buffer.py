"""The UDP receive buffer of a connection's sockets is raised past aioice's 256 KiB."""

from __future__ import annotations

import socket
from typing import Any

from aioice import turn

from peerhub_client.udpbuffer import DEFAULT_UDP_RECEIVE_BUFFER, raise_udp_receive_buffer, rmem_max

from .helpers import next_event, peers, wait


def receive_buffers(conn: Any) -> list[int]:
    """SO_RCVBUF of each UDP socket the connection's ICE gathered (aiortc/aioice internals)."""
    ice = conn.peer_connection.sctp.transport.transport
    protocols = ice.iceGatherer._connection._protocols
    socks = [p.transport.get_extra_info("socket") for p in protocols]
    return [s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) for s in socks if s is not None]


async def test_each_connection_socket_gets_the_large_receive_buffer(peerhub_server: Any) -> None:
    cap = rmem_max()
    async with peers(peerhub_server, None, None) as (alice, bob):
        incoming = next_event(bob, "connection")
        conn = await wait(alice.connect(bob.id))
        remote = await wait(incoming)
        await wait(remote)
        expected = min(DEFAULT_UDP_RECEIVE_BUFFER, cap or DEFAULT_UDP_RECEIVE_BUFFER)
        for side in (conn, remote):
            sizes = receive_buffers(side)
            assert sizes, "no UDP sockets found"
            # Linux reports twice what was asked (its bookkeeping overhead)
            assert all(size == 2 * expected for size in sizes), (sizes, expected)


def test_the_buffer_is_only_ever_raised() -> None:
    before = turn.UDP_SOCKET_BUFFER_SIZE
    assert raise_udp_receive_buffer(1024) == before
    assert turn.UDP_SOCKET_BUFFER_SIZE == before
