"""Keys are separate tenants: ids, messages, offline queues, discovery and limits.

Two keys hold the same peer ids at once; nothing sent, listed or counted under one key
is ever seen under the other.
"""

from __future__ import annotations

import json
import urllib.request

from signalling.protocol import Errors
from tests.servers import LiveServer
from tests.test_apikeys_helpers import StartServer, make_keys
from tests.wsclient import closed_with, join, nothing_arrives, open_socket, recv, send


def peers_of(server: LiveServer, key: str) -> list[str]:
    with urllib.request.urlopen(f"{server.base_url}{key}/peers", timeout=5) as resp:
        return sorted(json.loads(resp.read()))


async def test_same_ids_under_two_keys_never_see_each_others_traffic(
        start_server: StartServer) -> None:
    with start_server() as server:
        make_keys(server, {"name": "red", "key": "red", "allow_discovery": True},
                  {"name": "blue", "key": "blue", "allow_discovery": True})
        red = {i: await join(server, i, token=f"r{i}", key="red") for i in ("a", "b")}
        blue = {i: await join(server, i, token=f"b{i}", key="blue") for i in ("a", "b")}
        await send(red["a"], type="OFFER", dst="b", payload="red only")
        await send(blue["a"], type="OFFER", dst="b", payload="blue only")
        assert await recv(red["b"]) == {"type": "OFFER", "src": "a", "dst": "b",
                                        "payload": "red only"}
        assert await recv(blue["b"]) == {"type": "OFFER", "src": "a", "dst": "b",
                                         "payload": "blue only"}
        assert await nothing_arrives(red["b"]) and await nothing_arrives(blue["b"])
        assert peers_of(server, "red") == ["a", "b"] == peers_of(server, "blue")
        await blue["b"].close()
        await closed_with(blue["b"])
        assert peers_of(server, "red") == ["a", "b"]
        for ws in (*red.values(), blue["a"]):
            await ws.close()


async def test_offline_queue_is_per_key(start_server: StartServer) -> None:
    with start_server() as server:
        make_keys(server, {"name": "red", "key": "red"}, {"name": "blue", "key": "blue"})
        sender = await join(server, "s", key="red")
        await send(sender, type="OFFER", dst="late", payload="for red's late")
        wrong = await join(server, "late", key="blue")
        assert await nothing_arrives(wrong, 0.5)
        right = await open_socket(server, "late", key="red")
        assert await recv(right) == {"type": "OPEN"}
        assert (await recv(right))["payload"] == "for red's late"
        for ws in (sender, wrong, right):
            await ws.close()


async def test_a_keys_concurrent_limit_counts_only_its_own_peers(
        start_server: StartServer) -> None:
    with start_server() as server:
        make_keys(server, {"name": "small", "key": "small", "concurrent_limit": 2},
                  {"name": "big", "key": "big"})
        small = [await join(server, f"s{n}", key="small") for n in range(2)]
        big = [await join(server, f"b{n}", key="big") for n in range(5)]
        over = await open_socket(server, "s2", key="small")
        assert await recv(over) == {"type": "ERROR",
                                    "payload": {"msg": Errors.CONNECTION_LIMIT_EXCEED}}
        assert await closed_with(over) == 1008
        big.append(await join(server, "b5", key="big"))  # the other key is not limited
        await small[0].close()
        await closed_with(small[0])
        again = await join(server, "s2", key="small")  # a freed slot is usable
        await send(big[0], type="CANDIDATE", dst="b5", payload="fine")
        assert (await recv(big[5]))["payload"] == "fine"
        for ws in (*small[1:], *big, again):
            await ws.close()


def test_discovery_is_per_key(start_server: StartServer) -> None:
    with start_server() as server:
        make_keys(server, {"name": "open", "key": "open", "allow_discovery": True},
                  {"name": "closed", "key": "closed"})
        assert peers_of(server, "open") == []
        try:
            urllib.request.urlopen(f"{server.base_url}closed/peers", timeout=5)
        except urllib.error.HTTPError as exc:
            assert exc.code == 401 and exc.read() == b"Unauthorized"
        else:
            raise AssertionError("discovery answered for a key without it")
