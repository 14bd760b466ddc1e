"""A small event emitter with PeerJS-style ``on``/``once``/``off``/``emit``.

Handlers may be plain functions or coroutine functions; coroutines are run as tasks
owned by the emitter. A handler that raises is logged, never silently dropped.

Two kinds of events cannot be missed by attaching a handler late:

- *held* events (``held_events``, e.g. a peer's ``connection``): emitted while nobody
  listens, they are kept (at most ``MAX_HELD`` per event) and handed, in order, to the
  first handler attached;
- *sticky* events (``open``): while the state they announce lasts, a handler attached
  afterwards is called once with the same arguments, on the next loop iteration.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ClassVar

__all__ = ["MAX_HELD", "EventEmitter", "Handler", "TaskSet"]

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


MAX_HELD = 64


class EventEmitter:
    """Named events with any number of handlers, called in registration order."""

    held_events: ClassVar[frozenset[str]] = frozenset()

    def __init__(self) -> None:
        self._handlers: dict[str, list[tuple[Handler, bool]]] = {}
        self._handler_tasks = TaskSet(type(self).__name__)
        self._held: dict[str, deque[tuple[Any, ...]]] = {}
        self._sticky: dict[str, tuple[Any, ...]] = {}

    def on(self, event: str, handler: Handler | None = None) -> Any:
        """Register ``handler`` for ``event``; usable as a decorator when ``handler`` is None."""
        if handler is None:
            return lambda fn: self.on(event, fn)
        self._handlers.setdefault(event, []).append((handler, False))
        self._attached(event, handler, once=False)
        return handler

    def once(self, event: str, handler: Handler) -> Handler:
        """Register ``handler`` for the next ``event`` only."""
        if event in self._sticky:  # it has happened and still holds: that is the next one
            self._call_soon(event, handler, once=True)
            return handler
        self._handlers.setdefault(event, []).append((handler, True))
        self._attached(event, handler, once=True)
        return handler

    def _attached(self, event: str, handler: Handler, *, once: bool) -> None:
        held = self._held.get(event)
        while held and self.listener_count(event):
            self.emit(event, *held.popleft())
        if not held:
            self._held.pop(event, None)
        if event in self._sticky:
            self._call_soon(event, handler, once=once)
        self._listener_added(event)

    def _call_soon(self, event: str, handler: Handler, *, once: bool) -> None:
        def call() -> None:
            args = self._sticky.get(event)
            if args is None:
                return  # the state ended before the handler could be told
            if not once and not any(h == handler for h, _ in self._handlers.get(event, [])):
                return  # removed meanwhile
            self._call(event, handler, args)

        asyncio.get_running_loop().call_soon(call)

    def _set_sticky(self, event: str, *args: Any) -> None:
        """``event`` (emitted now) describes a state that lasts until ``_clear_sticky``."""
        self._sticky[event] = args

    def _clear_sticky(self, event: str) -> None:
        self._sticky.pop(event, None)

    def off(self, event: str, handler: Handler | None = None) -> None:
        """Remove ``handler`` (or every handler) for ``event``."""
        if handler is None:
            self._handlers.pop(event, None)
            return
        entries = self._handlers.get(event, [])
        self._handlers[event] = [(h, o) for h, o in entries if h != handler]

    def listener_count(self, event: str) -> int:
        return len(self._handlers.get(event, []))

    def emit(self, event: str, *args: Any) -> bool:
        """Call every handler of ``event``; return whether there was any."""
        entries = self._handlers.get(event, [])
        if not entries:
            if event in self.held_events:
                self._hold(event, args)
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

    def _hold(self, event: str, args: tuple[Any, ...]) -> None:
        held = self._held.setdefault(event, deque())
        if len(held) < MAX_HELD:
            held.append(args)
        else:
            log.warning("%s: %d %r events wait for a listener; dropping one",
                        type(self).__name__, len(held), event)  # fmt: skip

    def _listener_added(self, event: str) -> None:
        """Hook for subclasses (e.g. to flush buffered data to a first listener)."""


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable
