"""ICE consent (RFC 7675): late answers keep a connection, no answers end it.

Two real aioice connections over UDP in this process; the controlled side's answers to
consent checks are held back, as a busy peer's are, by deferring its STUN handling.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aioice import ice

from peerhub_client import consent
from tests.waiting import until

INTERVAL = 0.1  # consent checks 10 times a second instead of every 5 s
TIMEOUT = 5.0  # consent expires 5 s after the newest answered check, instead of 30 s


def test_consent_expires_only_after_the_timeout_since_the_newest_answered_check() -> None:
    assert not consent.consent_expired(100.0, 129.9)
    assert consent.consent_expired(100.0, 130.0)
    assert not consent.consent_expired(100.0, 104.9, timeout=TIMEOUT)
    assert consent.consent_expired(100.0, 105.0, timeout=TIMEOUT)


def test_install_replaces_aioices_check_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ice.Connection, "query_consent", ice.Connection.query_consent)
    consent.install()
    consent.install()  # twice is once
    assert ice.Connection.query_consent is consent.query_consent


@pytest.fixture
def quick_consent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ice, "CONSENT_INTERVAL", INTERVAL)
    monkeypatch.setattr(consent, "CONSENT_TIMEOUT", TIMEOUT)
    monkeypatch.setattr(ice.Connection, "query_consent", consent.query_consent)


@pytest.fixture
async def pair(quick_consent: None) -> AsyncIterator[tuple[ice.Connection, ice.Connection]]:
    a = ice.Connection(ice_controlling=True, use_ipv6=False)
    b = ice.Connection(ice_controlling=False, use_ipv6=False)
    await asyncio.gather(a.gather_candidates(), b.gather_candidates())
    for mine, theirs in ((a, b), (b, a)):
        for candidate in theirs.local_candidates:
            await mine.add_remote_candidate(candidate)
        await mine.add_remote_candidate(None)
        mine.remote_username, mine.remote_password = theirs.local_username, theirs.local_password
    await asyncio.wait_for(asyncio.gather(a.connect(), b.connect()), 30)
    yield a, b
    await asyncio.gather(a.close(), b.close())


def answer_late(conn: ice.Connection, delay: float | None) -> None:
    """Defer ``conn``'s handling of STUN requests by ``delay`` s (None: never answer)."""
    original: Callable[..., Any] = conn.request_received
    loop = asyncio.get_running_loop()

    def deferred(*args: Any) -> None:
        if delay is not None:
            loop.call_later(delay, original, *args)

    conn.request_received = deferred  # type: ignore[method-assign]


def closed(conn: ice.Connection) -> bool:
    return conn._query_consent_task is None or conn._query_consent_task.done()


async def test_answers_later_than_one_stun_timeout_keep_the_connection(
        pair: tuple[ice.Connection, ice.Connection]) -> None:
    a, b = pair
    answer_late(b, 0.8)  # aioice's own check gives up on an answer after 0.5 s
    await asyncio.sleep(2 * TIMEOUT)  # time passing is what is tested here (aioice: ~4 s)
    assert not closed(a)
    await a.send(b"still talking")
    assert await asyncio.wait_for(b.recv(), 10) == b"still talking"


async def test_no_answers_end_the_connection_after_the_timeout(
        pair: tuple[ice.Connection, ice.Connection]) -> None:
    a, b = pair
    answer_late(b, None)
    started = asyncio.get_running_loop().time()
    await until(lambda: closed(a), what="consent expired")
    assert asyncio.get_running_loop().time() - started >= TIMEOUT - 2 * INTERVAL
