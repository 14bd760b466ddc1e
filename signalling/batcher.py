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
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


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
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """Queue ``item`` for the next batch and wait for its result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, future))
        task = self._task
        if task is None or task.done() or task.get_loop() is not loop:
            self._task = loop.create_task(self._drain(), name=f"peerhub-{self._name}")
        return await future

    async def _drain(self) -> None:
        await asyncio.sleep(0)  # let the rest of this loop iteration's callers join
        while self._pending:
            batch, self._pending = self._pending[:self._max], self._pending[self._max:]
            live = [(item, fut) for item, fut in batch if not fut.done()]
            if not live:
                continue
            try:
                results = await self._run([item for item, _ in live])
                if len(results) != len(live):
                    raise BatchMismatch(f"{self._name}: {len(results)} results for "
                                        f"{len(live)} items")
            except asyncio.CancelledError:
                for _, fut in live:
                    if not fut.done():
                        fut.cancel()
                raise
            except Exception as exc:  # noqa: BLE001 - handed to every caller of this batch
                for _, fut in live:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (item, fut), result in zip(live, results, strict=True):
                if not fut.done():
                    fut.set_result(result)
                elif self._orphan is not None:
                    self._orphan(item, result)

    @property
    def waiting(self) -> int:
        """Items not yet handed to ``run``."""
        return len(self._pending)
