"""An id speaks only through its current holder (issue 13, item 2): after LEAVE, a
same-token takeover or a takeover on another node, the old socket's frames are not
relayed as that id; it gets ERROR "ID is no longer held by this connection" and 1008."""

from __future__ import annotations

import time
from collections.abc import Callable

from websockets.asyncio.client import ClientConnection

from signalling.protocol import Errors
from tests.servers import LiveServer
from tests.wsclient import closed_with, join, nothing_arrives, open_socket, recv, rejoin, send

NOT_HELD = {"type": "ERROR", "payload": {"msg": Errors.ID_NOT_HELD}}


async def refused_as_old_holder(old: ClientConnection, dst: str) -> None:
    await send(old, type="OFFER", dst=dst, payload="forged")
    assert await recv(old) == NOT_HELD
    assert await closed_with(old) == 1008


async def test_after_leave_the_old_socket_no_longer_speaks_for_the_id(
        peerhub_server: LiveServer) -> None:
    server = peerhub_server
    old, third = await join(server, "famous", "first"), await join(server, "third-a")
    await send(old, type="LEAVE")  # frees the id
    owner = await rejoin(server, "famous", "owner-token")
    await refused_as_old_holder(old, "third-a")
    assert await nothing_arrives(third)
    await send(owner, type="OFFER", dst="third-a", payload="real")
    assert await recv(third) == {"type": "OFFER", "src": "famous", "dst": "third-a",
                                 "payload": "real"}
    for ws in (owner, third):
        await ws.close()


async def test_after_a_same_token_takeover_the_old_socket_is_refused(
        peerhub_server: LiveServer) -> None:
    server = peerhub_server
    old, third = await join(server, "taken", "shared"), await join(server, "third-b")
    new = await open_socket(server, "taken", "shared")  # takeover: no second OPEN
    await send(new, type="OFFER", dst="third-b", payload="new")
    assert (await recv(third))["payload"] == "new"
    await refused_as_old_holder(old, "third-b")
    assert await nothing_arrives(third)
    for ws in (new, third):
        await ws.close()


async def test_after_a_takeover_on_another_node_the_old_socket_is_refused(
        cluster: Callable[..., list[LiveServer]]) -> None:
    n1, n2 = cluster(2)
    old, third = await join(n1, "roaming", "shared"), await join(n1, "third-c")
    new = await open_socket(n2, "roaming", "shared")  # the same token on another node
    await send(new, type="OFFER", dst="third-c", payload="from n2")
    assert (await recv(third, 10))["payload"] == "from n2"
    # Node 1 learns of the move through its channel: poll (to an absent id, so nothing
    # forged reaches anyone) until the old socket is refused.
    deadline = time.monotonic() + 10
    while True:
        await send(old, type="CANDIDATE", dst="nobody-here", payload="probe")
        try:
            reply = await recv(old, 0.3)
        except TimeoutError:
            assert time.monotonic() < deadline, "the old socket still speaks for the id"
            continue
        if reply == NOT_HELD:
            break
    assert await closed_with(old) == 1008
    # And after LEAVE on node 1 with the owner on node 2.
    other, witness = await join(n1, "second", "a"), await join(n2, "witness")
    await send(other, type="LEAVE")
    owner = await rejoin(n2, "second", "b")
    await refused_as_old_holder(other, "witness")
    assert await nothing_arrives(witness)
    for ws in (new, third, owner, witness):
        await ws.close()
