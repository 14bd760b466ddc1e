"""A cancellation that Python 3.11 can lose, and the check that keeps loops stoppable.

On Python 3.11, ``asyncio.wait_for`` returns the inner result and drops a cancellation
that arrives in the loop iteration in which the inner awaitable completes (3.12 rebuilt
``wait_for`` on ``asyncio.timeout`` and keeps it). redis-py 8.1 sends every command
through ``wait_for(..., socket_timeout)``, so a background loop cancelled while it
sends to Redis can carry on as if nothing had happened, and whatever awaits its end
waits forever. Found in the suite: the hub's lease renewal and the bus's presence loop
each held a test's teardown for the rest of its 180 s, about one run in ten under load.

The request is still counted by ``Task.cancelling()``, so a loop that calls
:func:`raise_if_cancelled` once per round ends at its next round at the latest.
"""

from __future__ import annotations

import asyncio


def raise_if_cancelled() -> None:
    """Raise ``CancelledError`` if the current task was asked to stop and is still
    running (its cancellation was lost on the way)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
