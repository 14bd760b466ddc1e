"""In-process tests of the cluster's parts: the batcher, and two Redis hubs in one loop
sharing a real Redis (a private prefix), with recording endpoints standing in for
sockets."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from signalling.batcher import Batcher, BatchMismatch
from signalling.decisions import Claim
from signalling.hub import Limits, Parcel
from signalling.protocol import parse_client_frame
from tests.endpoints import Recorder
from tests.services import REDIS_URL, redis_reachable
from tests.waiting import until

# --- the batcher ----------------------------------------------------------------------

async def test_concurrent_submits_share_one_call_and_get_their_own_results() -> None:
    calls: list[list[int]] = []

    async def run(items: list[int]) -> list[int]:
        calls.append(items)
        return [i * 10 for i in items]

    batcher: Batcher[int, int] = Batcher(run, max_batch=100)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(250)))
    assert results == [i * 10 for i in range(250)]
    assert [len(c) for c in calls] == [100, 100, 50]


async def test_a_failing_batch_fails_each_caller_and_the_next_batch_works() -> None:
    fail = True

    async def run(items: list[int]) -> list[int]:
        if fail:
            raise ConnectionError("down")
        return items

    batcher: Batcher[int, int] = Batcher(run)
    outcomes = await asyncio.gather(*(batcher.submit(i) for i in range(5)),
                                    return_exceptions=True)
    assert all(isinstance(o, ConnectionError) for o in outcomes)
    fail = False
    assert await batcher.submit(7) == 7


async def test_a_short_answer_is_an_error_not_a_hang() -> None:
    async def run(items: list[int]) -> list[int]:
        return items[:-1]

    batcher: Batcher[int, int] = Batcher(run)
    with pytest.raises(BatchMismatch):
        await asyncio.wait_for(asyncio.gather(batcher.submit(1), batcher.submit(2)), 5)


async def test_a_cancelled_callers_result_goes_to_orphan() -> None:
    release = asyncio.Event()
    orphans: list[tuple[int, int]] = []

    async def run(items: list[int]) -> list[int]:
        await release.wait()
        return items

    batcher: Batcher[int, int] = Batcher(run, orphan=lambda i, r: orphans.append((i, r)))
    waiting = asyncio.ensure_future(batcher.submit(3))
    kept = asyncio.ensure_future(batcher.submit(4))
    await asyncio.sleep(0.05)
    waiting.cancel()
    release.set()
    assert await kept == 4
    assert orphans == [(3, 3)]


async def test_a_caller_gone_before_the_call_is_left_out_of_it() -> None:
    calls: list[list[int]] = []

    async def run(items: list[int]) -> list[int]:
        calls.append(items)
        return items

    batcher: Batcher[int, int] = Batcher(run, max_batch=2)
    gone = asyncio.ensure_future(batcher.submit(1))
    kept = [asyncio.ensure_future(batcher.submit(i)) for i in (2, 3, 4)]
    await asyncio.sleep(0)  # one loop turn (not a timed wait): the four are queued, and
    assert batcher.waiting == 4  # the batch task, made in that turn, has not run yet
    gone.cancel()
    assert await asyncio.gather(*kept) == [2, 3, 4]
    assert calls == [[2], [3, 4]]  # the first batch of two is its one caller left


# --- two Redis hubs -------------------------------------------------------------------

@pytest.fixture
async def hubs() -> AsyncIterator[tuple[object, object]]:
    from tests.conftest import missing

    if not redis_reachable():
        missing(f"Redis not reachable at {REDIS_URL}")
    from signalling.cluster import redis_hub

    prefix = f"tparts-{uuid.uuid4().hex[:8]}"
    made = [redis_hub(REDIS_URL, prefix, f"n{i}", queue_limit=100, expire_timeout=0.5,
                      cleanup_interval=0.1, lease=5.0) for i in (1, 2)]
    try:
        yield made[0], made[1]
    finally:
        # Stopping must not hang (a node's drain depends on it). Once, under load 7, this
        # teardown did, for the rest of pytest-timeout's 180 s with no clue where: now a
        # hang fails here with every task's stack printed.
        try:
            async with asyncio.timeout(60):
                for hub in made:
                    await hub.close_all(None, 1001, "test over")
                    await hub.stop()
        except TimeoutError:
            for task in asyncio.all_tasks():
                task.print_stack(file=sys.stderr)
            raise
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        for name in client.scan_iter(match=f"{prefix}:*"):
            client.delete(name)
        client.close()


LIMITS = Limits(server_limit=10_000, key_limit=0)


async def test_a_nul_in_an_id_cannot_forge_a_queued_frame_or_its_expire(hubs: tuple) -> None:
    h1, h2 = hubs
    sender = Recorder("k", "evil\x00victim")
    victim = Recorder("k", "victim")
    assert await h1.register(sender, LIMITS) is Claim.NEW
    assert await h1.register(victim, LIMITS) is Claim.NEW
    frame = json.dumps({"type": "OFFER", "dst": "late\x00x", "payload": "a\x00b|c"})
    await h1.relay(sender, parse_client_frame(frame))
    link = h1.directory.link
    queue = link.names.queue("k", "late\x00x")
    await until(lambda: link.redis.llen(queue))  # handed to Redis by the flusher
    late = Recorder("k", "late\x00x")
    assert await h2.register(late, LIMITS) is Claim.NEW
    await h2.flush_queue(late)
    assert late.frames == [{"type": "OFFER", "src": "evil\x00victim", "dst": "late\x00x",
                            "payload": "a\x00b|c"}]
    # A queue that times out: the EXPIRE goes to the real sender, with its real id.
    await h1.relay(sender, parse_client_frame(json.dumps(
        {"type": "OFFER", "dst": "never\x00", "payload": 1})))
    await until(lambda: sender.frames)
    assert sender.frames == [{"type": "EXPIRE", "src": "never\x00", "dst": "evil\x00victim"}]
    assert victim.frames == []


async def test_a_crowd_of_claims_on_two_hubs_with_one_id_each_wins_once(hubs: tuple) -> None:
    h1, h2 = hubs
    eps = [Recorder("k", f"p{i % 300}", token=f"t{i}") for i in range(600)]
    claims = await asyncio.gather(*(
        (h1 if i % 2 else h2).register(ep, LIMITS) for i, ep in enumerate(eps)))
    assert claims.count(Claim.NEW) == 300
    assert claims.count(Claim.TAKEN) == 300
    assert sorted(await h1.peer_ids("k"), key=lambda s: int(s[1:])) == [
        f"p{i}" for i in range(300)]
    winners = [ep for ep, c in zip(eps, claims, strict=True) if c is Claim.NEW]
    hub_of = {id(ep): (h1 if i % 2 else h2) for i, ep in enumerate(eps)}
    await asyncio.gather(*(hub_of[id(ep)].unregister(ep) for ep in winners))
    assert await h2.peer_ids("k") == []


async def test_the_key_limit_counts_claims_within_one_batch(hubs: tuple) -> None:
    h1, _ = hubs
    limits = Limits(server_limit=10_000, key_limit=5)
    claims = await asyncio.gather(*(h1.register(Recorder("small", f"s{i}"), limits)
                                    for i in range(8)))
    assert claims.count(Claim.NEW) == 5
    assert claims.count(Claim.LIMIT) == 3


# --- the lean script call ------------------------------------------------------------

def test_pack_command_writes_what_redis_pys_own_packer_writes() -> None:
    from redis.asyncio.connection import Connection

    from signalling.redis_link import pack_command

    parts = ["EVALSHA", "0" * 40, "2", "p:peer:6:peerjs:a b", "", "\x00|\r\n", "é漢🙂",
             "x" * 70_000, "-1"]
    assert pack_command(parts) == b"".join(Connection().pack_command(*parts))


async def test_a_script_call_survives_a_redis_restart_its_stale_connection_and_lost_script(
        private_redis: Any) -> None:
    import redis

    from signalling.redis_link import RedisLink

    link = RedisLink(private_redis.url, f"tlean-{uuid.uuid4().hex[:8]}", "n1")
    names = link.names
    try:
        keys = [names.queue_clock(), names.peer("k", "a\x00é"), names.ids("k"),
                names.queue("k", "a\x00é")]
        claim = ["n1-x", "c", "tok|1", "0", "a\x00é", "5000"]
        assert await link.run_script("ADMIT", keys, claim) == [[0, "", 0, "", 0]]
        assert await link.run_script("ADMIT", keys, claim) == [[1, "tok|1", 0, "n1-x", 0]]
        private_redis.kill()
        private_redis.start()  # empty: the lease and the loaded scripts are gone, and the
        # pooled connection is stale
        assert await link.run_script("ADMIT", keys, claim) == [[0, "", 0, "", 0]]
        assert await link.redis.get(keys[1]) == "n1-x|tok|1"
        private_redis.kill()
        with pytest.raises(redis.RedisError):
            await link.run_script("ADMIT", keys, claim)
        private_redis.start()
        assert await link.run_script("ADMIT", keys, claim) == [[0, "", 0, "", 0]]
        assert await link.run_script("ADMIT", keys[:3],
                                     ["n1-x", "r", "n1-x|tok|1", "a\x00é"]) == [1]
        assert await link.redis.exists(keys[1]) == 0
    finally:
        await link.aclose()


async def test_claims_while_redis_is_down_are_cluster_unavailable(private_redis: Any) -> None:
    from signalling.cluster import redis_hub
    from signalling.errors import ClusterUnavailable

    hub = redis_hub(private_redis.url, f"tdown-{uuid.uuid4().hex[:8]}", "n1", queue_limit=10,
                    expire_timeout=5, cleanup_interval=1, lease=5)
    try:
        assert await hub.register(Recorder("k", "up"), LIMITS) is Claim.NEW
        private_redis.kill()
        with pytest.raises(ClusterUnavailable):
            await hub.directory.claim(Recorder("k", "down"), 0, False)
    finally:
        private_redis.start()
        await hub.stop()


# --- one admission call per loop turn -------------------------------------------------

def script_calls(url: str) -> int:
    """EVALSHA calls a (private) redis-server has run so far (not counting those answered
    NOSCRIPT, as the first call after a start is)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats").get("cmdstat_evalsha", {})
        return int(stats.get("calls", 0)) - int(stats.get("failed_calls", 0))
    finally:
        client.close()


async def held_by_the_pause(link: Any) -> bool:
    """True when a script call waits in Redis, held by ``CLIENT PAUSE``."""
    return int((await link.redis.info("clients"))["blocked_clients"]) == 1


@pytest.fixture
async def admitting(private_redis: Any) -> AsyncIterator[Any]:
    """A RedisLink on the test's own redis-server (so its script calls can be counted)."""
    from signalling.redis_link import RedisLink

    link = RedisLink(private_redis.url, f"tadmit-{uuid.uuid4().hex[:8]}", "n1")
    try:
        yield link
    finally:
        await link.aclose()


async def test_one_turns_claims_releases_and_drains_are_one_script_call(
        admitting: Any, private_redis: Any) -> None:
    from signalling.redis_queue import queue_item

    link, admission = admitting, admitting.admission
    old, late = Recorder("k", "old", token="t-old"), Recorder("k", "late\x00é")
    assert (await admission.claim(old, 0, 5000)).claim(old.token) is Claim.NEW
    await link.redis.rpush(link.names.queue("k", late.peer_id), queue_item("a", "f1"),
                           queue_item("b", "f2"))
    await link.redis.zadd(link.names.queue_clock(), {link.names.queue("k", late.peer_id): 1})
    before = script_calls(private_redis.url)
    new = Recorder("k", "new", token="t-new")
    seen, freed, items, none = await asyncio.gather(
        admission.claim(new, 0, 5000), admission.release("k", "old", "t-old"),
        admission.drain("k", late.peer_id), admission.drain("k", "nobody"))
    assert script_calls(private_redis.url) - before == 1
    assert seen.claim(new.token) is Claim.NEW
    assert freed is True
    assert items == [queue_item("a", "f1"), queue_item("b", "f2")]
    assert none == []
    assert await link.redis.get(link.names.peer("k", "new")) == link.holder_value("t-new")
    assert await link.redis.exists(link.names.peer("k", "old"),
                                   link.names.queue("k", late.peer_id)) == 0
    assert await link.redis.zrange(link.names.queue_clock(), 0, -1) == []
    assert await link.redis.zrange(link.names.ids("k"), 0, -1) == ["new"]


async def test_a_turns_operations_run_in_the_order_they_were_submitted(
        admitting: Any) -> None:
    admission = admitting.admission
    first, second = Recorder("k", "x", token="t1"), Recorder("k", "x", token="t2")
    assert (await admission.claim(first, 0, 5000)).claim("t1") is Claim.NEW
    # Released, then claimed with another token in the same call: the claim finds it free.
    freed, seen = await asyncio.gather(admission.release("k", "x", "t1"),
                                       admission.claim(second, 0, 5000))
    assert freed is True
    assert seen.claim("t2") is Claim.NEW
    # Claimed by another token, then released by its holder: the claim found it taken.
    seen, freed = await asyncio.gather(admission.claim(first, 0, 5000),
                                       admission.release("k", "x", "t2"))
    assert seen.claim("t1") is Claim.TAKEN
    assert freed is True
    # A key's limit counts the releases before a claim in the same call.
    small = [Recorder("small", f"s{i}", token=f"t{i}") for i in range(3)]
    assert (await admission.claim(small[0], 1, 5000)).claim("t0") is Claim.NEW
    freed, taken, limited = await asyncio.gather(
        admission.release("small", "s0", "t0"), admission.claim(small[1], 1, 5000),
        admission.claim(small[2], 1, 5000))
    assert (freed, taken.claim("t1"), limited.claim("t2")) == (True, Claim.NEW, Claim.LIMIT)
    # A release with a token that no longer holds the id frees nothing.
    assert await admission.release("small", "s1", "t0") is False


async def test_a_claim_whose_caller_left_during_the_call_is_given_back(
        admitting: Any, private_redis: Any) -> None:
    admission = admitting.admission
    await admitting.redis.execute_command("CLIENT", "PAUSE", "20000", "WRITE")  # scripts wait
    try:
        before = script_calls(private_redis.url)
        left = asyncio.ensure_future(admission.claim(Recorder("k", "gone", token="t"), 0, 5000))
        await until(lambda: held_by_the_pause(admitting))  # the claim is sent, unanswered
        left.cancel()
    finally:
        await admitting.redis.execute_command("CLIENT", "UNPAUSE")
    with pytest.raises(asyncio.CancelledError):
        await left
    # The claim ran (the id was taken), then the give-back freed it: two script calls.
    await until(lambda: script_calls(private_redis.url) - before == 2)
    assert await admitting.redis.exists(admitting.names.peer("k", "gone")) == 0
    seen = await admission.claim(Recorder("k", "gone", token="other"), 0, 5000)
    assert seen.claim("other") is Claim.NEW


async def test_a_call_cancelled_before_its_reply_leaves_its_own_connection_answering_right(
        admitting: Any) -> None:
    link = admitting
    conn = link.own_connection()
    keys = [link.names.queue_clock(), link.names.peer("k", "a"), link.names.ids("k"),
            link.names.queue("k", "a")]
    claim = ["n1-x", "c", "tok", "0", "a", "5000"]
    assert await link.run_script("ADMIT", keys, claim, conn) == [[0, "", 0, "", 0]]
    await link.redis.execute_command("CLIENT", "PAUSE", "20000", "WRITE")
    try:
        call = asyncio.ensure_future(link.run_script("ADMIT", keys, claim, conn))
        await until(lambda: held_by_the_pause(link))  # sent, unanswered
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
    finally:
        await link.redis.execute_command("CLIENT", "UNPAUSE")
    # The cancelled call's reply (a takeover: [[1, ...]]) must not answer this release
    # (redis-py's read_response drops a connection whose reply it did not read).
    assert await link.run_script("ADMIT", keys[:3], ["n1-x", "r", "n1-x|tok", "a"],
                                 conn) == [1]


async def test_a_redis_restart_under_a_turn_is_cluster_unavailable_then_admits_again(
        admitting: Any, private_redis: Any) -> None:
    from signalling.errors import ClusterUnavailable

    admission = admitting.admission
    up = Recorder("k", "up", token="t")
    assert (await admission.claim(up, 0, 5000)).claim("t") is Claim.NEW
    private_redis.kill()
    down = await asyncio.gather(admission.claim(Recorder("k", "down"), 0, 5000),
                                admission.release("k", "up", "t"),
                                admission.drain("k", "late"), return_exceptions=True)
    assert isinstance(down[0], ClusterUnavailable)
    assert down[1] is False  # logged; the lease runs out by itself
    assert isinstance(down[2], ClusterUnavailable)
    private_redis.start()  # empty, scripts gone, pooled connections stale
    seen, freed, items = await asyncio.gather(
        admission.claim(Recorder("k", "down", token="t2"), 0, 5000),
        admission.release("k", "up", "t"), admission.drain("k", "late"))
    assert seen.claim("t2") is Claim.NEW
    assert (freed, items) == (False, [])  # the restart lost the lease "up" held
    assert await admitting.redis.get(admitting.names.peer("k", "down")) == \
        admitting.holder_value("t2")


def command_calls(url: str, command: str) -> int:
    """Calls of ``command`` a (private) redis-server has run so far, scripts' included."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        return int(client.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))
    finally:
        client.close()


async def test_a_claim_tells_whether_anything_waits_in_the_ids_offline_queue(
        admitting: Any) -> None:
    from signalling.redis_queue import queue_item

    link, admission = admitting, admitting.admission
    # Nothing queued anywhere: the claim says so.
    assert (await admission.claim(Recorder("k", "a"), 0, 5000)).queued is False
    await link.redis.rpush(link.names.queue("k", "b"), queue_item("x", "f"))
    await link.redis.zadd(link.names.queue_clock(), {link.names.queue("k", "b"): 1})
    # Something waits for another id only: still nothing for this one.
    assert (await admission.claim(Recorder("k", "c"), 0, 5000)).queued is False
    # Its own queue holds something: with and without a key limit, and on a takeover.
    assert (await admission.claim(Recorder("k", "b"), 0, 5000)).queued is True
    assert (await admission.claim(Recorder("k", "b"), 0, 5000)).queued is True
    seen = await admission.claim(Recorder("lim", "b", token="t"), 5, 5000)
    assert (seen.claim("t"), seen.queued) == (Claim.NEW, False)
    await link.redis.rpush(link.names.queue("lim", "q"), queue_item("x", "f"))
    await link.redis.zadd(link.names.queue_clock(), {link.names.queue("lim", "q"): 1})
    assert (await admission.claim(Recorder("lim", "q"), 5, 5000)).queued is True
    # Not taken: nothing to drain either way.
    seen = await admission.claim(Recorder("k", "b", token="other"), 0, 5000)
    assert (seen.claim("other"), seen.queued) == (Claim.TAKEN, False)


async def test_a_peer_whose_claim_saw_no_queue_is_admitted_without_a_drain(
        private_redis: Any) -> None:
    from signalling.cluster import redis_hub

    hub = redis_hub(private_redis.url, f"tnodrain-{uuid.uuid4().hex[:8]}", "n1",
                    queue_limit=100, expire_timeout=5, cleanup_interval=1, lease=5.0)
    try:
        # A frame waits for "late" only (it came from another node while "late" was away).
        link = hub.directory.link
        await hub.queue.put([Parcel("k", "late", "x", '{"type":"OFFER"}', 0, False)])
        before = command_calls(private_redis.url, "lrange")
        fresh, late = Recorder("k", "fresh"), Recorder("k", "late")
        assert await hub.register(fresh, LIMITS) is Claim.NEW
        await hub.flush_queue(fresh)
        assert command_calls(private_redis.url, "lrange") == before  # no drain asked for
        assert await hub.register(late, LIMITS) is Claim.NEW
        await hub.flush_queue(late)
        assert command_calls(private_redis.url, "lrange") == before + 1
        assert late.frames == [{"type": "OFFER"}]
        assert await link.redis.exists(link.names.queue("k", "late")) == 0
        assert not hub._unqueued  # nothing kept once the queues were flushed
        # A peer that leaves between its claim and its flush leaves nothing behind either.
        brief = Recorder("k", "brief")
        assert await hub.register(brief, LIMITS) is Claim.NEW
        assert hub._unqueued
        assert await hub.unregister(brief) is True
        assert not hub._unqueued
    finally:
        await hub.close_all(None, 1001, "test over")
        await hub.stop()


async def test_a_release_of_a_lease_another_holder_took_leaves_that_lease_as_it_was(
        admitting: Any) -> None:
    link, admission = admitting, admitting.admission
    mine = Recorder("k", "x", token="mine")
    assert (await admission.claim(mine, 0, 60_000)).claim("mine") is Claim.NEW
    # Another node took the id over with another token (as after this lease ran out).
    other = "n2-y|theirs"
    lease, ids = link.names.peer("k", "x"), link.names.ids("k")
    expiry = int((await link.redis.time())[0]) * 1000 + 30_000
    await link.redis.set(lease, other, pxat=expiry)
    await link.redis.zadd(ids, {"x": expiry})
    assert await admission.release("k", "x", "mine") is False
    assert await link.redis.get(lease) == other
    assert await link.redis.pexpiretime(lease) == expiry
    assert await link.redis.zscore(ids, "x") == expiry
    # Its own lease is freed, set member included.
    assert await admission.release("k", "x", "theirs") is False  # not this node's
    assert await link.redis.get(lease) == other
    await link.redis.set(lease, link.holder_value("mine"), px=60_000)
    assert await admission.release("k", "x", "mine") is True
    assert await link.redis.exists(lease) == 0
    assert await link.redis.zscore(ids, "x") is None


# --- the cluster's routing decision ---------------------------------------------------

def test_handover_delivers_here_forwards_elsewhere_and_queues_only_what_may_wait() -> None:
    from signalling.decisions import Route, Where, decide_handover

    assert decide_handover(Where.HERE, False) is Route.DELIVER
    assert decide_handover(Where.ELSEWHERE, False) is Route.FORWARD
    assert decide_handover(Where.ELSEWHERE, True) is Route.FORWARD
    assert decide_handover(Where.NOWHERE, True) is Route.QUEUE
    assert decide_handover(Where.NOWHERE, False) is Route.DROP


async def test_a_message_to_a_peer_on_the_other_hub_crosses_and_leave_unregisters(
        hubs: tuple) -> None:
    h1, h2 = hubs
    a, b = Recorder("k", "a"), Recorder("k", "b")
    assert await h1.register(a, LIMITS) is Claim.NEW
    assert await h2.register(b, LIMITS) is Claim.NEW
    await h1.relay(a, parse_client_frame(json.dumps(
        {"type": "ANSWER", "dst": "b", "payload": {"x": 1}})))
    await until(lambda: b.frames)
    assert b.frames == [{"type": "ANSWER", "src": "a", "dst": "b", "payload": {"x": 1}}]
    await h2.relay(b, parse_client_frame(json.dumps({"type": "LEAVE"})))
    assert await h1.peer_ids("k") == ["a"]


async def test_a_burst_across_hubs_arrives_in_order_per_sender_server_frames_included(
        hubs: tuple) -> None:
    h1, h2 = hubs
    senders = [Recorder("k", f"s\x00{i}:é") for i in range(4)]
    dsts = [Recorder("k", f"d{i}]\"") for i in range(3)]
    for ep in senders:
        assert await h1.register(ep, LIMITS) is Claim.NEW
    for ep in dsts:
        assert await h2.register(ep, LIMITS) is Claim.NEW
    for n in range(30):  # one flush or several: the order per sender must hold
        for s in senders:
            for d in dsts:
                await h1.relay(s, parse_client_frame(json.dumps(
                    {"type": "CANDIDATE", "dst": d.peer_id, "payload": {"n": n, "x": "\x00"}})))
        if n == 10:  # a server frame (never queued) between relays keeps its place
            await h1.send_to("k", dsts[0].peer_id, json.dumps({"type": "EXPIRE", "src": "z"}))
    await until(lambda: all(len(d.frames) >= 120 for d in dsts) and len(dsts[0].frames) == 121)
    for d in dsts:
        for s in senders:
            got = [f["payload"]["n"] for f in d.frames if f.get("src") == s.peer_id]
            assert got == list(range(30))
    first = dsts[0].frames
    expire_at = first.index({"type": "EXPIRE", "src": "z"})
    assert [f["payload"]["n"] for f in first[:expire_at]] == [n for n in range(11)
                                                              for _ in senders]


async def test_frames_for_a_peer_that_left_before_they_arrived_wait_for_it(
        hubs: tuple) -> None:
    from signalling import nodewire as wire
    from signalling.cluster import _on_message

    h1, h2 = hubs
    frames = [json.dumps({"type": "OFFER", "src": "a\x00", "dst": "gone", "payload": n})
              for n in range(3)]
    # As if h1 had found "gone" on h2 and it left before h2 read the message.
    await _on_message(wire.pack([wire.frames_entry("k", "gone", True, frames)], frames), h2)
    link = h2.directory.link
    queue = link.names.queue("k", "gone")

    async def three_queued() -> bool:
        return bool(await link.redis.llen(queue) == 3)

    await until(three_queued)
    back = Recorder("k", "gone")
    assert await h1.register(back, LIMITS) is Claim.NEW
    await h1.flush_queue(back)
    assert [f["payload"] for f in back.frames] == [0, 1, 2]
