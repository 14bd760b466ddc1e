"""Background tasks that per-connection code starts on first use.

Several parts (the hub's expiry sweep, the session writer, the key watcher, the lag
sampler, the control-plane listener) are started lazily from the connect path, so each
check runs once per connection. :func:`runs_on_a_running_loop` makes that check cheap:
``asyncio.get_running_loop()`` compares the process id with ``getpid()``, a system call
each time (glibc does not cache it), and the connect path asked five times per socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any


def runs_on_a_running_loop(task: asyncio.Future[Any] | None) -> bool:
    """True if ``task`` is pending on a loop that is running now.

    In this process one loop runs at a time (the edge's, which daphne's reactor shares),
    so a pending task on a running loop is on the caller's loop; a task left on a closed
    or stopped loop (a previous test's) is not, and gets started again.
    """
    return task is not None and not task.done() and task.get_loop().is_running()


class Running:
    """Remembers that some background tasks are all pending on the running loop, so that
    a check made for every connection is one attribute read and one C call instead of a
    :func:`runs_on_a_running_loop` call per task (14 per socket before).

    :meth:`watch` arms it; the first of the tasks to end (done, failed or cancelled) and
    :meth:`forget` disarm it, and so does the loop stopping (a closed test loop).
    """

    __slots__ = ("loop",)

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None

    def holds(self) -> bool:
        """True while every watched task is pending on a loop that is running now."""
        loop = self.loop
        return loop is not None and loop.is_running()

    def watch(self, tasks: Sequence[asyncio.Future[Any] | None]) -> None:
        """Hold while all of ``tasks`` are pending (not at all if one is not, or none
        is given)."""
        self.loop = None
        if not tasks or not all(runs_on_a_running_loop(t) for t in tasks):
            return
        loop = None
        for task in tasks:
            assert task is not None  # (pending, so not None)
            task.add_done_callback(self._ended)
            loop = task.get_loop()
        self.loop = loop

    def forget(self) -> None:
        """Stop holding (a part was stopped or replaced)."""
        self.loop = None

    def _ended(self, _task: asyncio.Future[Any]) -> None:
        self.loop = None
