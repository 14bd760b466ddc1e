"""The flush's one round trip (``HANDOVER`` in signalling/redis_scripts.py) on a real
Redis: every destination is looked up and, in the same step, its frames are published
to the node holding it; what is not forwarded comes back with the reason."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest

from signalling import nodewire as wire
from signalling import redis_scripts as lua
from signalling.names import Names
from tests.services import REDIS_URL, redis_reachable

KEY = "k\x00|é"


@pytest.fixture
def redis_names() -> Iterator[tuple[object, Names]]:
    from tests.conftest import missing

    if not redis_reachable():
        missing(f"Redis not reachable at {REDIS_URL}")
    import redis

    client = redis.Redis.from_url(REDIS_URL, decode_responses=True, protocol=2)
    names = Names(f"thandover-{uuid.uuid4().hex[:8]}")
    try:
        yield client, names
    finally:
        for name in client.scan_iter(match=f"{names.prefix}:*"):
            client.delete(name)
        client.close()


def frames_for(dst: str, n: int) -> list[str]:
    return [json.dumps({"type": "CANDIDATE", "src": "a\x00", "dst": dst, "payload": i})
            for i in range(n)]


def part(dst: str, runs: list[tuple[bool, list[str]]]) -> str:
    return wire.pack([wire.frames_entry(KEY, dst, q, fs) for q, fs in runs],
                     [f for _, fs in runs for f in fs])


def test_frames_go_to_their_holders_node_in_one_message_and_the_rest_come_back(
        redis_names: tuple) -> None:
    client, names = redis_names
    holders = {"b1\x00": "nodeB", "b2:]": "nodeB", "c": "nodeC", "d": "nodeD", "mine": "me"}
    for dst, node in holders.items():
        client.set(names.peer(KEY, dst), f"{node}|tok|en", px=10_000)
    pubsub = client.pubsub()
    pubsub.subscribe(names.node("nodeB"), names.node("nodeC"))  # nodeD: nobody listens
    for _ in range(2):
        assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    order = ["b1\x00", "c", "gone", "b2:]", "d", "mine"]
    runs = {dst: [(True, frames_for(dst, 3)), (False, frames_for(dst, 1))] for dst in order}
    codes = handover(client, names, order, [part(dst, runs[dst]) for dst in order])
    # forwarded and heard 1, forwarded unheard 0, the lease is ours 2, no lease 3
    assert codes == [1, 1, 3, 1, 0, 2]
    got: dict[str, list[wire.Entry]] = {}
    deadline = time.monotonic() + 5
    while len(got) < 2:
        assert time.monotonic() < deadline, "a node's message did not arrive"
        message = pubsub.get_message(timeout=1)
        if message and message["type"] == "message":
            got[message["channel"]] = wire.unpack(message["data"])
    pubsub.close()

    def entries(*dsts: str) -> list[wire.Entry]:
        return [("M", KEY, dst, q, fs) for dst in dsts for q, fs in runs[dst]]

    # One message per node, its destinations in the order they were handed over.
    assert got == {names.node("nodeB"): entries("b1\x00", "b2:]"),
                   names.node("nodeC"): entries("c")}


def test_every_destination_on_one_node_goes_as_one_message_as_it_came(
        redis_names: tuple) -> None:
    client, names = redis_names
    order = ["x\x00é", "y"]
    for dst in order:
        client.set(names.peer(KEY, dst), "nodeB|t", px=10_000)
    parts = [part(dst, [(True, frames_for(dst, 2))]) for dst in order]
    pubsub = client.pubsub()
    pubsub.subscribe(names.node("nodeB"))
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    assert handover(client, names, order, parts) == [1, 1]
    message = pubsub.get_message(timeout=5)
    pubsub.close()
    assert message is not None and message["data"] == "".join(parts)


def test_a_lease_taken_over_is_followed_at_once(redis_names: tuple) -> None:
    client, names = redis_names
    lease = names.peer(KEY, "x")
    parts = [part("x", [(True, frames_for("x", 1))])]
    client.set(lease, "me|t", px=10_000)
    assert handover(client, names, ["x"], parts) == [2]
    client.set(lease, "other|t", px=10_000)  # the peer moved to another node
    assert handover(client, names, ["x"], parts) == [0]  # no subscriber in this test
    client.delete(lease)  # and left
    assert handover(client, names, ["x"], parts) == [3]


def handover(client: object, names: Names, order: list[str], parts: list[str]) -> list[int]:
    """Call HANDOVER as the flush does: the parts as one argument, then their sizes."""
    encoded = [p.encode() for p in parts]
    return client.register_script(lua.HANDOVER)(  # type: ignore[attr-defined, no-any-return]
        keys=[names.peer(KEY, dst) for dst in order],
        args=["me", names.node(""), b"".join(encoded), *map(len, encoded)])
