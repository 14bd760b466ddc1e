"""Stand-ins for client transports in in-process hub tests (polling: tests/waiting.py)."""

from __future__ import annotations

import json


class Recorder:
    """An endpoint (``signalling.hub.Endpoint``) that keeps what it is sent."""

    def __init__(self, key: str, peer_id: str, token: str = "tok",
                 queue_limit: int = 0) -> None:
        self.key, self.peer_id, self.token, self.queue_limit = key, peer_id, token, queue_limit
        self.frames: list[dict[str, object]] = []
        self.closed: int | None = None

    async def deliver(self, frame: str) -> None:
        self.frames.append(json.loads(frame))

    async def shut(self, frame: str | None, code: int, reason: str = "") -> None:
        if frame is not None:
            await self.deliver(frame)
        self.closed = code
