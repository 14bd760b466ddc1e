"""Coalescing concurrent requests into one batched call.

Every caller that submits an item within the same event-loop iteration (and while the
previous batch is in flight) shares one call of ``run(items)``: a thousand peers
registering at once cost a handful of Redis round trips, not a thousand, and the number
of Redis connections in use never grows with the crowd. Each caller gets back its own
result, or the exception the batch raised; a result whose caller was cancelled meanwhile
goes to ``orphan`` (e.g. to give back an id claimed for a socket that closed).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from itertools import compress
from operator import methodcaller
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

_done = methodcaller("done")
#: Futures of ``loop.create_future()`` (asyncio's and uvloop's loops) are asyncio.Future.
_set_result = asyncio.Future.set_result


class BatchMismatch(RuntimeError):
    """A batch call returned a different number of results than it was given items."""


class Batcher(Generic[T, R]):
    """Submit items one by one; ``run`` sees them in batches of at most ``max_batch``."""

    def __init__(self, run: Callable[[list[T]], Awaitable[Sequence[R]]],
                 max_batch: int = 500, name: str = "batch",
                 orphan: Callable[[T, R], None] | None = None) -> None:
        self._run = run
        self._orphan = orphan
        self._max = max_batch
        self._name = name
        # Items and their callers' futures, side by side: the common batch (no caller
        # gone) is handed over and answered by loops that run in C (map), not bytecodes.
        self._items: list[T] = []
        self._futures: list[asyncio.Future[R]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """Queue ``item`` for the next batch and wait for its result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._items.append(item)
        self._futures.append(future)
        task = self._task
        if task is None or task.done() or task.get_loop() is not loop:
            self._task = loop.create_task(self._drain(), name=f"peerhub-{self._name}")
        return await future

    def _take(self) -> tuple[list[T], list[asyncio.Future[R]]]:
        """The next batch: at most ``max_batch`` items whose callers still wait."""
        items, futures = self._items, self._futures
        if len(items) > self._max:
            self._items, self._futures = items[self._max:], futures[self._max:]
            items, futures = items[:self._max], futures[:self._max]
        else:
            self._items, self._futures = [], []
        if any(map(_done, futures)):  # callers gone before the call: left out
            waiting = [not f.done() for f in futures]
            items, futures = list(compress(items, waiting)), list(compress(futures, waiting))
        return items, futures

    async def _drain(self) -> None:
        await asyncio.sleep(0)  # let the rest of this loop iteration's callers join
        while self._items:
            items, futures = self._take()
            if not items:
                continue
            try:
                results = await self._run(items)
                if len(results) != len(items):
                    raise BatchMismatch(f"{self._name}: {len(results)} results for "
                                        f"{len(items)} items")
            except asyncio.CancelledError:
                for fut in futures:
                    if not fut.done():
                        fut.cancel()
                raise
            except Exception as exc:  # noqa: BLE001 - handed to every caller of this batch
                for fut in futures:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            if any(map(_done, futures)):  # callers gone during the call
                self._answer_some(items, futures, results)
            else:
                deque(map(_set_result, futures, results), maxlen=0)

    def _answer_some(self, items: list[T], futures: list[asyncio.Future[R]],
                     results: Sequence[R]) -> None:
        for item, fut, result in zip(items, futures, results, strict=True):
            if not fut.done():
                fut.set_result(result)
            elif self._orphan is not None:
                self._orphan(item, result)

    @property
    def waiting(self) -> int:
        """Items not yet handed to ``run``."""
        return len(self._items)
