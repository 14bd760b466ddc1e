"""The flush's one round trip (``HANDOVER`` in signalling/redis_scripts.py) on a real
Redis: the destinations are looked up and, when one other node holds them all, their
message is published to it in the same step; otherwise nothing is published and each
destination's holder comes back."""

from __future__ import annotations

import json
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


def message(dsts: list[str]) -> str:
    frames = {d: [json.dumps({"type": "CANDIDATE", "src": "a\x00", "dst": d, "payload": i})
                  for i in range(3)] for d in dsts}
    return wire.pack([wire.frames_entry(KEY, d, True, frames[d]) for d in dsts],
                     [f for d in dsts for f in frames[d]])


def handover(client: object, names: Names, dsts: list[str]) -> list[object]:
    return client.register_script(lua.HANDOVER)(  # type: ignore[attr-defined, no-any-return]
        keys=[names.peer(KEY, d) for d in dsts], args=["me", names.node(""), message(dsts)])


def hold(client: object, names: Names, dst: str, node: str) -> None:
    client.set(names.peer(KEY, dst), f"{node}|tok|en", px=10_000)  # type: ignore[attr-defined]


def test_destinations_all_on_one_other_node_get_their_message_in_the_same_step(
        redis_names: tuple) -> None:
    client, names = redis_names
    dsts = ["b1\x00", "b2:]é"]
    for dst in dsts:
        hold(client, names, dst, "nodeB")
    pubsub = client.pubsub()
    pubsub.subscribe(names.node("nodeB"))
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    assert handover(client, names, dsts) == [1, 1]
    got = pubsub.get_message(timeout=5)
    pubsub.close()
    assert got is not None and got["data"] == message(dsts)  # as any node version reads it


def test_destinations_on_several_nodes_publish_nothing_and_name_each_holder(
        redis_names: tuple) -> None:
    client, names = redis_names
    for dst, node in (("b", "nodeB"), ("c", "nodeC"), ("mine", "me")):
        hold(client, names, dst, node)
    pubsub = client.pubsub()
    pubsub.subscribe(names.node("nodeB"), names.node("nodeC"))
    for _ in range(2):
        assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    assert handover(client, names, ["b", "c", "gone", "mine"]) == [0, "nodeB", "nodeC", "",
                                                                   "me"]
    assert handover(client, names, ["b", "b"]) == [1, 1]  # then the other node's message
    got = [pubsub.get_message(timeout=1) for _ in range(2)]
    pubsub.close()
    assert [m["channel"] for m in got if m] == [names.node("nodeB")]


def test_a_lease_taken_over_is_followed_at_once(redis_names: tuple) -> None:
    client, names = redis_names
    hold(client, names, "x", "me")
    assert handover(client, names, ["x"]) == [0, "me"]
    hold(client, names, "x", "other")  # the peer moved to another node
    assert handover(client, names, ["x"]) == [1, 0]  # published; nobody listens there
    client.delete(names.peer(KEY, "x"))  # and left
    assert handover(client, names, ["x"]) == [0, ""]
