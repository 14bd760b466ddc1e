"""Keep a bot's peer registered: reconnect with its token after the server goes away."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from ..errors import PeerError
from ..peer import Peer

__all__ = ["Backoff", "stay_connected"]

log = logging.getLogger(__name__)

OPEN_TIMEOUT = 10.0


@dataclass(frozen=True)
class Backoff:
    """Exponential delays between reconnection attempts."""

    first: float = 0.5
    factor: float = 2.0
    limit: float = 10.0

    def delays(self) -> list[float]:
        """The growing delays up to ``limit`` (the last one then repeats)."""
        out, delay = [], self.first
        while delay < self.limit:
            out.append(delay)
            delay *= self.factor
        return [*out, self.limit]


def _disconnected(peer: Peer) -> asyncio.Future[None]:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    if peer.disconnected or peer.destroyed:
        future.set_result(None)
        return future

    def settle(*_: object) -> None:
        if not future.done():
            future.set_result(None)

    peer.once("disconnected", settle)
    peer.once("close", settle)
    return future


async def stay_connected(peer: Peer, backoff: Backoff | None = None) -> None:
    """Run until the peer is destroyed, reconnecting whenever it gets disconnected."""
    backoff = backoff or Backoff()
    while not peer.destroyed:
        await _disconnected(peer)
        if not peer.destroyed:
            await _reconnect(peer, backoff)


async def _reconnect(peer: Peer, backoff: Backoff) -> None:
    delays = backoff.delays()
    attempt = 0
    while not peer.destroyed:
        delay = delays[min(attempt, len(delays) - 1)]
        attempt += 1
        await asyncio.sleep(delay)
        if await _try_once(peer, attempt):
            log.info("reconnected as %s after %d attempt(s)", peer.id, attempt)
            return


async def _try_once(peer: Peer, attempt: int) -> bool:
    if peer.destroyed or peer.open:
        return True
    try:
        peer.reconnect()
        await asyncio.wait_for(peer.ready(), OPEN_TIMEOUT)
    except PeerError as exc:
        log.info("reconnect attempt %d failed: %s %s", attempt, exc.type.value, exc.message)
        return False
    except TimeoutError:
        log.info("reconnect attempt %d: no OPEN from the server", attempt)
        peer.disconnect()
        return False
    return True
