"""Waiting for a condition in tests: poll with a deadline, never a fixed sleep.

The one polling module of the suite (see docs/testing.md). A deadline here only bounds
a hang: a condition that holds returns at once, so the defaults are generous (the suite
runs on two cores shared by several servers and a browser).

- :func:`eventually` retries a check until it stops raising ``AssertionError`` (and
  the time-outs and connection errors of a server still starting or stopping);
- :func:`until` polls a predicate until it returns something truthy.

Both take sync or async callables, return the check's last result, and with
``in_thread=True`` run a blocking check (a subprocess, a database query, ``urllib``)
in a thread so that the event loop, and the servers' clients on it, keep running.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any

TIMEOUT = 30.0
"""Default deadline, in seconds, of every wait: long enough for a loaded machine."""

RETRIED = (AssertionError, TimeoutError, OSError)
"""What :func:`eventually` treats as "not yet"."""


class NotReached(AssertionError):
    """A polled condition was still false at its deadline."""


async def _call(check: Callable[[], Any], in_thread: bool) -> Any:
    result = await asyncio.to_thread(check) if in_thread else check()
    if inspect.isawaitable(result):
        result = await result
    return result


async def eventually(check: Callable[[], Any], timeout: float = TIMEOUT,
                     interval: float = 0.1, in_thread: bool = False) -> Any:
    """Retry ``check`` until it returns without raising; return what it returned.

    ``AssertionError``, ``TimeoutError`` and ``OSError`` mean "not yet"; the last one
    is raised once ``timeout`` seconds have passed.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await _call(check, in_thread)
        except RETRIED:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(interval)


async def until(predicate: Callable[[], Any], timeout: float = TIMEOUT,
                interval: float = 0.1, in_thread: bool = False, what: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy; return that value.

    Raises :class:`NotReached` (naming ``what``, or the predicate) at the deadline.
    Exceptions from the predicate propagate at once: use :func:`eventually` for a
    check that may fail while the condition is not yet met.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = await _call(predicate, in_thread)
        if result:
            return result
        if time.monotonic() > deadline:
            raise NotReached(f"{what or getattr(predicate, '__qualname__', predicate)} "
                             f"not reached within {timeout} s (last: {result!r})")
        await asyncio.sleep(interval)
