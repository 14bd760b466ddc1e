"""Background tasks that per-connection code starts on first use.

Several parts (the hub's expiry sweep, the session writer, the key watcher, the lag
sampler, the control-plane listener) are started lazily from the connect path, so each
check runs once per connection. :func:`runs_on_a_running_loop` makes that check cheap:
``asyncio.get_running_loop()`` compares the process id with ``getpid()``, a system call
each time (glibc does not cache it), and the connect path asked five times per socket.
"""

from __future__ import annotations

import asyncio
from typing import Any


def runs_on_a_running_loop(task: asyncio.Future[Any] | None) -> bool:
    """True if ``task`` is pending on a loop that is running now.

    In this process one loop runs at a time (the edge's, which daphne's reactor shares),
    so a pending task on a running loop is on the caller's loop; a task left on a closed
    or stopped loop (a previous test's) is not, and gets started again.
    """
    return task is not None and not task.done() and task.get_loop().is_running()
