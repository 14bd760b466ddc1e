"""In-process tests of the hub's parts, each against the same contract: the directory,
the offline store and the node bus, in memory and in a real Redis (a unique prefix per
test, its keys deleted at the end); then the one Hub routing over the memory parts."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from signalling.decisions import Claim
from signalling.hub import (
    Directory,
    Enqueued,
    Frames,
    Handed,
    Hub,
    Limits,
    OfflineStore,
    Parcel,
)
from signalling.hub_memory import LoopbackBus, MemoryDirectory, MemoryQueue, memory_hub
from signalling.protocol import parse_client_frame
from tests.endpoints import Recorder
from tests.services import REDIS_URL, redis_reachable
from tests.waiting import until

EXPIRE_AFTER = 0.3


@pytest.fixture
def prefix() -> Iterator[str]:
    """A Redis prefix of this test's own; every key under it is deleted afterwards."""
    from tests.conftest import missing

    if not redis_reachable():
        missing(f"Redis not reachable at {REDIS_URL}")
    name = f"thubparts-{uuid.uuid4().hex[:8]}"
    yield name
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"{name}:*"):
        client.delete(key)
    client.close()


@pytest.fixture
async def links(prefix: str) -> AsyncIterator[Any]:
    """Make Redis links (one per simulated node) on ``prefix``; close them at the end."""
    from signalling.redis_link import RedisLink

    made: list[RedisLink] = []

    def make(name: str = "n1") -> RedisLink:
        made.append(RedisLink(REDIS_URL, prefix, name))
        return made[-1]

    yield make
    for link in made:
        await link.aclose()


@pytest.fixture(params=["memory", "redis"])
async def directory(request: pytest.FixtureRequest, links: Any) -> Directory:
    if request.param == "memory":
        return MemoryDirectory()
    from signalling.redis_directory import RedisDirectory

    return RedisDirectory(links(), lease=5.0)


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, links: Any) -> OfflineStore:
    if request.param == "memory":
        return MemoryQueue(limit=2, expire_after=EXPIRE_AFTER, sender_limit=3)
    from signalling.redis_queue import RedisQueue

    return RedisQueue(links(), limit=2, expire_timeout=EXPIRE_AFTER, sender_limit=3,
                      cleanup_interval=0.05)


# --- the directory --------------------------------------------------------------------

async def test_a_claim_takes_a_free_id_refuses_another_token_and_lets_the_same_back(
        directory: Directory) -> None:
    a = Recorder("k", "a", token="t1")
    seen = await directory.claim(a, key_limit=0, node_full=False)
    assert (seen.held, seen.claim("t1")) == (False, Claim.NEW)
    assert await directory.holder("k", "a") == "t1"
    taken = await directory.claim(Recorder("k", "a", token="t2"), 0, False)
    assert (taken.held, taken.token, taken.claim("t2")) == (True, "t1", Claim.TAKEN)
    assert await directory.holder("k", "a") == "t1"  # the holder keeps it
    back = await directory.claim(Recorder("k", "a", token="t1"), 0, node_full=True)
    assert back.claim("t1") is Claim.TAKEOVER  # even on a full node, as in peerjs-server
    assert await directory.peer_ids("k") == ["a"]
    assert directory.keys_online() == {"k": 1}


async def test_the_key_limit_and_a_full_node_refuse_only_new_ids(directory: Directory) -> None:
    outcomes = [(await directory.claim(Recorder("small", f"s{i}"), 2, False)).claim("tok")
                for i in range(3)]
    assert outcomes == [Claim.NEW, Claim.NEW, Claim.LIMIT]
    full = await directory.claim(Recorder("other", "x"), 0, node_full=True)
    assert (full.at_limit, full.claim("tok")) == (True, Claim.LIMIT)
    assert await directory.holder("small", "s2") is None
    assert await directory.holder("other", "x") is None
    assert sorted(await directory.peer_ids("small")) == ["s0", "s1"]


async def test_release_frees_only_the_holders_token(
        directory: Directory) -> None:
    a, b = Recorder("k", "a", token="t1"), Recorder("k", "b")
    for ep in (a, b):
        assert (await directory.claim(ep, 0, False)).claim(ep.token) is Claim.NEW
    await directory.release(Recorder("k", "a", token="someone else"))
    assert await directory.holder("k", "a") == "t1"
    assert await directory.holder("k", "b") == b.token
    await directory.release(a)
    assert await directory.holder("k", "a") is None
    assert await directory.peer_ids("k") == ["b"]
    assert await directory.renew([b]) == []


async def test_redis_leases_renew_and_report_ids_taken_meanwhile(links: Any) -> None:
    from signalling.redis_directory import RedisDirectory

    one, two = RedisDirectory(links("n1"), lease=5.0), RedisDirectory(links("n2"), lease=5.0)
    mine = Recorder("k", "mine", token="t1")
    assert (await one.claim(mine, 0, False)).claim("t1") is Claim.NEW
    # Redis loses the lease (a restart) and another node claims the id meanwhile.
    await one.link.redis.delete(one.link.names.peer("k", "mine"))
    assert (await two.claim(Recorder("k", "mine", token="t2"), 0, False)).claim(
        "t2") is Claim.NEW
    kept = Recorder("k", "kept")
    await one.claim(kept, 0, False)
    await one.link.redis.delete(one.link.names.peer("k", "kept"))
    assert await one.renew([mine, kept]) == [mine]
    assert await two.holder("k", "kept") == "tok"  # re-created by the renewal
    seen = await one.claim(Recorder("k", "mine", token="t2"), 0, False)
    assert seen.node == two.link.node_id and seen.claim("t2") is Claim.TAKEOVER


# --- the offline store ----------------------------------------------------------------

def parcel(dst: str, src: str = "s", n: int = 0, key: str = "k") -> Parcel:
    frame = json.dumps({"type": "OFFER", "src": src, "dst": dst, "payload": n})
    return Parcel(key, dst, src, frame, limit=0, local=True)


async def test_the_store_keeps_frames_in_order_bounded_per_destination(
        store: OfflineStore) -> None:
    outcomes = await store.put([parcel("d", n=1), parcel("d", n=2), parcel("d", n=3)])
    assert outcomes == [Enqueued.QUEUED, Enqueued.QUEUED, Enqueued.FULL]
    assert store.depth() >= 1
    frames = [json.loads(f)["payload"] for f in await store.take("k", "d")]
    assert frames == [1, 2]
    assert await store.take("k", "d") == []
    assert await store.take("other key", "d") == []


async def test_the_store_bounds_what_one_sender_has_waiting(store: OfflineStore) -> None:
    outcomes = await store.put([parcel(f"d{i}", src="busy") for i in range(4)])
    assert outcomes == [Enqueued.QUEUED] * 3 + [Enqueued.SENDER_FULL]
    assert await store.put([parcel("d9", src="calm")]) == [Enqueued.QUEUED]


async def test_a_queue_that_times_out_names_each_sender_once(store: OfflineStore) -> None:
    await store.put([parcel("late", src="a"), parcel("late", src="a", n=1)])
    await store.put([parcel("late2", src="b")])
    expired: dict[str, tuple[str, ...]] = {}
    deadline = time.monotonic() + 5
    while len(expired) < 2:
        assert time.monotonic() < deadline, f"only {expired} expired"
        for item in await store.expire(time.monotonic()):
            assert item.key == "k"
            expired[item.dst] = item.senders
        await asyncio.sleep(0.05)
    assert expired == {"late": ("a",), "late2": ("b",)}
    assert await store.take("k", "late") == []


async def test_redis_store_sends_back_a_message_whose_destination_came_online(
        links: Any) -> None:
    from signalling.redis_directory import RedisDirectory
    from signalling.redis_queue import RedisQueue

    link = links()
    store = RedisQueue(link, limit=10, expire_timeout=5.0, sender_limit=0,
                       cleanup_interval=1.0)
    await RedisDirectory(link, lease=5.0).claim(Recorder("k", "here"), 0, False)
    assert await store.put([parcel("here"), parcel("away")]) == [Enqueued.ONLINE,
                                                                 Enqueued.QUEUED]
    assert store.possibly_lost() == [("k", "away", "s")]  # owed an EXPIRE if Redis lost it
    assert store.possibly_lost() == []


async def test_memory_queue_after_timeout_forgets_the_queue() -> None:
    q = MemoryQueue(limit=5, expire_after=1.0)
    await q.put([parcel("d")])
    assert await q.expire(time.monotonic()) == []
    [item] = await q.expire(time.monotonic() + 1.0)
    assert (item.dst, item.senders, q.depth()) == ("d", ("s",), 0)


# --- the node bus ---------------------------------------------------------------------

async def test_loopback_bus_is_subscribed_and_nobody_else_hears() -> None:
    bus = LoopbackBus()
    assert bus.subscribed and await bus.wait_subscribed(0) and await bus.ping()
    assert await bus.hand_over([[Frames("key", "id", True, ["{}"])]]) == [Handed.HELD_HERE]


async def test_redis_bus_carries_entries_to_the_named_node_and_tracks_presence(
        links: Any) -> None:
    from signalling.cluster import RedisBus

    one, two = RedisBus(links("n1"), lease=3.0), RedisBus(links("n2"), lease=3.0)
    heard: list[object] = []

    class Listener:
        async def on_frames(self, key: str, dst: str, queueable: bool,
                            frames: list[str]) -> None:
            heard.append(Frames(key, dst, queueable, frames))

        def on_moved(self, key: str, peer_id: str) -> None:
            heard.append(("moved", key, peer_id))

        async def on_restored(self) -> None:
            heard.append("restored")

    for bus in (one, two):
        bus.start(Listener())
        assert await bus.wait_subscribed(5)
    names = one.link.names
    redis = one.link.redis
    for key, dst, node in (("key\x00", "b|c", two.node_id), ("key", "d", two.node_id),
                           ("key", "y", two.node_id), ("key", "x", "gone-node"),
                           ("key", "mine", one.node_id)):
        await redis.set(names.peer(key, dst), f"{node}|tok", px=10_000)
    frames = ['{"type":"OFFER","n":1}', '{"type":"OFFER","n":2}']
    assert await one.hand_over([[Frames("key\x00", "b|c", True, frames),
                                 Frames("key\x00", "b|c", False, ["{}"])],
                                [Frames("key", "d", False, ["{}"])]]) == [Handed.FORWARDED] * 2
    await one.moved(two.node_id, "key", "c")
    await until(lambda: ("moved", "key", "c") in heard)
    # In order, whatever batches the wire cuts them into.
    got = [(b.key, b.dst, b.queueable, f) for b in heard if isinstance(b, Frames)
           for f in b.frames]
    assert got == [("key\x00", "b|c", True, frames[0]), ("key\x00", "b|c", True, frames[1]),
                   ("key\x00", "b|c", False, "{}"), ("key", "d", False, "{}")]
    assert heard[-1] == ("moved", "key", "c")
    seen = len(heard)
    assert await one.hand_over([[Frames("key", "x", True, ["{}"])],
                                [Frames("key", "y", True, ["{}"])],
                                [Frames("key", "mine", True, ["{}"])],
                                [Frames("key", "nobody", True, ["{}"])]]) == [
        Handed.UNHEARD, Handed.FORWARDED, Handed.HELD_HERE, Handed.NOT_HELD]
    await until(lambda: len(heard) == seen + 1)
    assert await one.ping()
    deadline = time.monotonic() + 5
    while not await redis.hexists(names.nodes(), two.node_id):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    await two.stop()
    assert not await redis.hexists(names.nodes(), two.node_id)
    assert not await redis.exists(names.alive(two.node_id))
    assert await one.hand_over([[Frames("key", "y", True, ["{}"])]]) == [Handed.UNHEARD]
    await one.stop()


# --- the hub over memory parts --------------------------------------------------------

LIMITS = Limits(server_limit=100, key_limit=0)


@pytest.fixture
async def hub() -> AsyncIterator[Hub]:
    made = memory_hub(queue_limit=2, expire_timeout=EXPIRE_AFTER, cleanup_interval=0.05,
                      sender_queue_limit=3)
    yield made
    await made.close_all(None, 1001, "test over")
    await made.stop()


def frame(kind: str, dst: str | None = None, payload: object = 1) -> Any:
    body: dict[str, object] = {"type": kind, "payload": payload}
    if dst is not None:
        body["dst"] = dst
    return parse_client_frame(json.dumps(body))


async def test_hub_delivers_queues_for_a_late_joiner_and_stamps_src(hub: Hub) -> None:
    a = Recorder("k", "a")
    assert await hub.register(a, LIMITS) is Claim.NEW
    await hub.relay(a, frame("OFFER", "b", {"sdp": 1}))
    b = Recorder("k", "b")
    assert await hub.register(b, LIMITS) is Claim.NEW
    await hub.flush_queue(b)
    await hub.relay(b, frame("ANSWER", "a", 2))
    assert b.frames == [{"type": "OFFER", "src": "a", "dst": "b", "payload": {"sdp": 1}}]
    assert a.frames == [{"type": "ANSWER", "src": "b", "dst": "a", "payload": 2}]
    assert hub.queue_depth() == 0


async def test_hub_expires_full_and_timed_out_queues_to_their_senders(hub: Hub) -> None:
    a = Recorder("k", "a")
    await hub.register(a, LIMITS)
    for n in range(3):  # the third is past the destination's bound of 2
        await hub.relay(a, frame("OFFER", "late", n))
    assert a.frames == [{"type": "EXPIRE", "src": "late", "dst": "a"}]
    await until(lambda: len(a.frames) == 2)  # the queue's timeout: one EXPIRE for both
    assert a.frames[1] == {"type": "EXPIRE", "src": "late", "dst": "a"}


async def test_hub_closes_a_sender_with_too_much_waiting_and_drops_offline_leave(
        hub: Hub) -> None:
    a = Recorder("k", "a")
    await hub.register(a, LIMITS)
    await hub.relay(a, frame("LEAVE", "nobody"))  # not queued, nothing said
    assert hub.queue_depth() == 0 and a.frames == []
    for n in range(4):
        await hub.relay(a, frame("OFFER", f"d{n}", n))
    assert a.closed == 1008
    assert a.frames[-1]["type"] == "ERROR"


async def test_hub_registration_limits_takeover_and_leave(hub: Hub) -> None:
    limits = Limits(server_limit=2, key_limit=0)
    a, b = Recorder("k", "a", token="t"), Recorder("k", "b")
    assert [await hub.register(ep, limits) for ep in (a, b)] == [Claim.NEW, Claim.NEW]
    assert await hub.register(Recorder("k", "c"), limits) is Claim.LIMIT
    again = Recorder("k", "a", token="t")
    assert await hub.register(again, limits) is Claim.TAKEOVER
    assert hub.local("k", "a") is again and not hub.is_current(a)
    assert await hub.register(Recorder("k", "a", token="x"), limits) is Claim.TAKEN
    assert not await hub.unregister(a)  # no longer the holder
    await hub.relay(again, frame("LEAVE"))
    assert await hub.peer_ids("k") == ["b"]
    assert hub.keys_online() == hub.local_keys_online() == {"k": 1}
    await hub.send_to("k", "b", '{"type":"OPEN"}')
    await hub.send_to("k", "nobody", '{"type":"OPEN"}')
    assert b.frames == [{"type": "OPEN"}]


async def test_a_draining_hub_admits_nobody(hub: Hub) -> None:
    from signalling.errors import NodeDraining

    hub.accepting = False
    with pytest.raises(NodeDraining):
        await hub.register(Recorder("k", "a"), LIMITS)


async def test_a_node_of_its_own_starts_and_stops_every_part(settings: Any) -> None:
    from signalling.node import Node

    node = Node("test-node", "", "unused", drain_window=0)
    before = asyncio.all_tasks()
    await node.start()
    hub = node.hub
    tasks = asyncio.all_tasks() - before
    assert {"peerhub-expiry", "peerhub-control", "peerhub-reconcile", "peerhub-keywatch",
            "peerhub-loop-lag"} <= {t.get_name() for t in tasks}
    node.metrics.connected("k")
    assert node.metrics.connects["k"] == 1
    await node.stop()
    assert not hub.accepting
    await until(lambda: all(t.done() for t in tasks))


async def test_a_node_starts_again_a_part_whose_task_ended(settings: Any) -> None:
    """The per-connection start check is one gate while every part runs; a part whose
    task ended (failed, cancelled) is started again by the next connection's check."""
    from signalling.node import Node

    node = Node("test-node", "", "unused", drain_window=0)
    await node.start()
    try:
        lag = node.metrics.lag_task
        watcher = node.key_watcher.task
        assert lag is not None and watcher is not None
        node.ensure_started()  # the gate holds: nothing new
        node.ensure_key_watcher()
        assert node.metrics.lag_task is lag and node.key_watcher.task is watcher
        lag.cancel()
        watcher.cancel()
        await until(lambda: lag.done() and watcher.done())
        node.ensure_started()
        node.ensure_key_watcher()
        restarted = node.metrics.lag_task
        assert restarted is not None and restarted is not lag and not restarted.done()
        assert node.key_watcher.task is not watcher and not node.key_watcher.task.done()
        expiry = node.hub.tasks[0]
        expiry.cancel()
        await until(expiry.done)
        node.ensure_started()
        assert node.hub.tasks[0] is not expiry and not node.hub.tasks[0].done()
    finally:
        await node.stop()


# The recorder's real stop may write (run after the file's other tests it has something
# to write, and failed with 'Database access not allowed'): it needs the database.
@pytest.mark.django_db(transaction=True)
async def test_a_part_that_never_stops_is_named_and_left_behind(
        settings: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """SIGTERM must end the process: a part whose stop hangs (a Redis or database call
    that never answers) is bounded, logged by name, and the later parts still stop."""
    from signalling import node as node_module

    monkeypatch.setattr(node_module, "_PART_STOP_TIMEOUT", 0.2)
    node = node_module.Node("test-node", "", "unused", drain_window=0)
    await node.start()
    hung = asyncio.Event()

    async def never() -> None:
        hung.set()
        await asyncio.Event().wait()

    monkeypatch.setattr(node.hub, "stop", never)
    recorder_stopped: list[bool] = []
    real_stop = node.recorder.stop

    async def recorder_stop() -> None:
        await real_stop()
        recorder_stopped.append(True)

    monkeypatch.setattr(node.recorder, "stop", recorder_stop)
    await asyncio.wait_for(node.stop(), 10)
    assert hung.is_set()
    assert recorder_stopped == [True]
    assert "stopping the hub took over 0s; the node stops without it" in caplog.text
