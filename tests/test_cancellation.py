"""A background loop stops even when Python 3.11's ``wait_for`` loses its cancellation."""

from __future__ import annotations

import asyncio

from signalling.cancellation import raise_if_cancelled


async def _loop_sending(rounds: list[int], check: bool) -> None:
    """The shape of the hub's and the bus's loops: a command sent through ``wait_for``
    (as redis-py sends every command), then a pause; the task cancels itself in the one
    loop iteration in which ``wait_for``'s inner task has finished (the lost case)."""
    me = asyncio.current_task()
    assert me is not None
    while True:
        if check:
            raise_if_cancelled()
        rounds.append(1)

        async def send() -> None:
            if len(rounds) == 2:
                asyncio.get_running_loop().call_soon(me.cancel)

        await asyncio.wait_for(send(), 5)
        await asyncio.sleep(0.01)
        if len(rounds) > 20:
            return  # went on long after the cancellation: lost


async def test_a_loop_that_checks_ends_even_when_wait_for_lost_the_cancellation() -> None:
    rounds: list[int] = []
    task = asyncio.get_running_loop().create_task(_loop_sending(rounds, check=True))
    done, _ = await asyncio.wait([task], timeout=30)
    assert task in done and task.cancelled()
    assert len(rounds) <= 3  # it ended at the round after the cancellation at most


async def test_the_check_is_silent_for_a_task_not_asked_to_stop() -> None:
    raise_if_cancelled()  # nothing raised
    async with asyncio.timeout(5):  # a timeout that did not expire leaves no request
        await asyncio.sleep(0)
    raise_if_cancelled()
    try:
        async with asyncio.timeout(0):  # nor does one that expired (it uncancels)
            await asyncio.sleep(1)
    except TimeoutError:
        pass
    raise_if_cancelled()
