"""A small event emitter with PeerJS-style ``on``/``once``/``off``/``emit``.

Handlers may be plain functions or coroutine functions; coroutines are run as tasks
owned by the emitter. A handler that raises is logged, never silently dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

__all__ = ["EventEmitter", "Handler", "TaskSet"]

log = logging.getLogger(__name__)

Handler = Callable[..., Any]


class TaskSet:
    """Background tasks with strong references, logged failures and bulk cancel."""

    def __init__(self, owner: str) -> None:
        self._owner = owner
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=f"{self._owner}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("task %s failed", task.get_name(), exc_info=exc)

    def cancel_all(self) -> None:
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()

    def tasks(self) -> list[asyncio.Task[Any]]:
        return list(self._tasks)

    def __len__(self) -> int:
        return len(self._tasks)


class EventEmitter:
    """Named events with any number of handlers, called in registration order."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[tuple[Handler, bool]]] = {}
        self._handler_tasks = TaskSet(type(self).__name__)

    def on(self, event: str, handler: Handler | None = None) -> Any:
        """Register ``handler`` for ``event``; usable as a decorator when ``handler`` is None."""
        if handler is None:
            return lambda fn: self.on(event, fn)
        self._handlers.setdefault(event, []).append((handler, False))
        self._listener_added(event)
        return handler

    def once(self, event: str, handler: Handler) -> Handler:
        """Register ``handler`` for the next ``event`` only."""
        self._handlers.setdefault(event, []).append((handler, True))
        self._listener_added(event)
        return handler

    def off(self, event: str, handler: Handler | None = None) -> None:
        """Remove ``handler`` (or every handler) for ``event``."""
        if handler is None:
            self._handlers.pop(event, None)
            return
        entries = self._handlers.get(event, [])
        self._handlers[event] = [(h, o) for h, o in entries if h is not handler]

    def listener_count(self, event: str) -> int:
        return len(self._handlers.get(event, []))

    def emit(self, event: str, *args: Any) -> bool:
        """Call every handler of ``event``; return whether there was any."""
        entries = self._handlers.get(event, [])
        if not entries:
            return False
        self._handlers[event] = [(h, o) for h, o in entries if not o]
        for handler, _ in entries:
            self._call(event, handler, args)
        return True

    def _call(self, event: str, handler: Handler, args: tuple[Any, ...]) -> None:
        try:
            result = handler(*args)
        except Exception:
            log.exception("%s handler for %r raised", type(self).__name__, event)
            return
        if isinstance(result, Awaitable):
            self._handler_tasks.spawn(_await(result), f"on-{event}")

    def _listener_added(self, event: str) -> None:
        """Hook for subclasses (e.g. to flush buffered data to a first listener)."""


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable
