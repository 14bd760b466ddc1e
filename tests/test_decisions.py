"""Pure routing, registration, queue and rate decisions, without sockets or clocks."""

from __future__ import annotations

import pytest

from signalling.decisions import Claim, Route, decide_claim, decide_route
from signalling.offline import Expired, OfflineQueue, QueueFull
from signalling.ratelimit import TokenBucket


def test_free_id_is_new_unless_at_limit() -> None:
    assert decide_claim(None, "t", at_limit=False) is Claim.NEW
    assert decide_claim(None, "t", at_limit=True) is Claim.LIMIT


def test_held_id_same_token_is_takeover_even_at_limit() -> None:
    assert decide_claim("t", "t", at_limit=True) is Claim.TAKEOVER


def test_held_id_other_token_is_taken() -> None:
    assert decide_claim("t", "u", at_limit=False) is Claim.TAKEN


@pytest.mark.parametrize(("msg_type", "dst", "online", "route"), [
    ("OFFER", "B", True, Route.DELIVER),
    ("ANSWER", "B", False, Route.QUEUE),
    ("CANDIDATE", "B", False, Route.QUEUE),
    ("LEAVE", "B", True, Route.DELIVER),
    ("LEAVE", "B", False, Route.DROP),
    ("EXPIRE", "B", True, Route.DELIVER),
    ("EXPIRE", "B", False, Route.DROP),
    ("LEAVE", None, False, Route.UNREGISTER),
    ("OFFER", None, False, Route.DROP),
    ("HEARTBEAT", None, False, Route.HEARTBEAT),
    ("FOO", "B", True, Route.DROP),
    ("ID-TAKEN", "B", True, Route.DROP),
    ("OPEN", "B", True, Route.DROP),
])
def test_routes(msg_type: str, dst: str | None, online: bool, route: Route) -> None:
    assert decide_route(msg_type, dst, online) is route


def test_queue_drains_in_order_per_key() -> None:
    q = OfflineQueue(limit=10, expire_after=5)
    q.push("k", "D", "A", "1", now=0)
    q.push("k", "D", "B", "2", now=1)
    q.push("other", "D", "A", "x", now=1)
    assert q.drain("k", "D") == ["1", "2"]
    assert q.drain("k", "D") == []
    assert q.drain("other", "D") == ["x"]


def test_queue_expires_from_first_message_once_per_sender() -> None:
    q = OfflineQueue(limit=10, expire_after=5)
    q.push("k", "D", "A", "1", now=0)
    q.push("k", "D", "A", "2", now=4)
    q.push("k", "D", "B", "3", now=4.5)
    assert q.expire(now=4.9) == []
    assert q.expire(now=5.0) == [Expired("k", "D", ("A", "B"))]
    assert len(q) == 0


def test_queue_over_limit_refuses_without_disturbing_queued() -> None:
    q = OfflineQueue(limit=2, expire_after=5)
    q.push("k", "D", "A", "1", now=0)
    q.push("k", "D", "A", "2", now=0)
    with pytest.raises(QueueFull):
        q.push("k", "D", "A", "3", now=0)
    assert q.drain("k", "D") == ["1", "2"]


def test_token_bucket_allows_burst_then_rate() -> None:
    bucket = TokenBucket(rate=10, burst=3, now=0)
    assert [bucket.take(0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.1)
    assert not bucket.take(0.1)


def test_queue_limit_can_be_set_per_push_and_zero_queues_nothing() -> None:
    q = OfflineQueue(limit=10, expire_after=5)
    q.push("k", "D", "A", "1", now=0, limit=1)
    with pytest.raises(QueueFull):
        q.push("k", "D", "A", "2", now=0, limit=1)
    none = OfflineQueue(limit=0, expire_after=5)
    with pytest.raises(QueueFull):
        none.push("k", "D", "A", "1", now=0)


def test_sender_limit_counts_across_destinations_and_frees_on_drain() -> None:
    from signalling.offline import SenderQueueFull

    q = OfflineQueue(limit=10, expire_after=5, sender_limit=2)
    q.push("k", "D1", "A", "1", now=0)
    q.push("k", "D2", "A", "2", now=0)
    with pytest.raises(SenderQueueFull):
        q.push("k", "D3", "A", "3", now=0)
    q.push("k", "D3", "B", "3", now=0)  # another sender is not affected
    q.drain("k", "D1")
    q.push("k", "D3", "A", "4", now=0)
