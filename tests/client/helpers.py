"""Small async helpers for client tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

from peerhub_client import Peer
from peerhub_client.events import EventEmitter
from tests.waiting import TIMEOUT, until

__all__ = ["TIMEOUT", "collector", "next_event", "peers", "until", "wait"]


class ServerLike(Protocol):
    host: str
    port: int
    path: str


def next_event(emitter: EventEmitter, event: str) -> asyncio.Future[Any]:
    """A future for the next ``event`` (its first argument, or None)."""
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def handler(*args: Any) -> None:
        if not future.done():
            future.set_result(args[0] if args else None)

    emitter.once(event, handler)
    return future


async def wait(future: asyncio.Future[Any] | Any, timeout: float = TIMEOUT) -> Any:
    return await asyncio.wait_for(future, timeout)


def collector(emitter: EventEmitter, event: str) -> list[Any]:
    """A list that every ``event`` is appended to."""
    seen: list[Any] = []
    emitter.on(event, lambda *args: seen.append(args[0] if args else None))
    return seen


@asynccontextmanager
async def peers(server: ServerLike, *ids: str | None, **options: Any) -> AsyncIterator[list[Peer]]:
    """Open peers on ``server`` and destroy them afterwards."""
    made = [Peer(i, host=server.host, port=server.port, path=server.path, **options) for i in ids]
    try:
        await asyncio.wait_for(asyncio.gather(*(p.ready() for p in made)), TIMEOUT)
        yield made
    finally:
        for p in made:
            p.destroy()
        for p in made:
            await p.wait_closed()
