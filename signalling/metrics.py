"""This process's counters: limit hits and refusals, connects, messages, event-loop lag.

Nothing here is on the relay path. Refusals and connects are counted when they happen
(once per connection, not per frame); message counts live on each connection's
:class:`~signalling.sessions.SessionInfo` (plain attribute increments the consumer
already makes) and are added up only when ``/metrics`` is scraped. Counting a refusal
is an in-memory increment; the session recorder writes the pending counts to the
database with its next batch, so the path that refuses something never waits.

The state has one owner, a :class:`Metrics` object held by the process's
:class:`~signalling.node.Node` (``get_node().metrics``); :func:`get_metrics`,
:func:`limit_hit` and :func:`take_pending` are shortcuts to it.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, cast

from signalling.looptasks import Running, runs_on_a_running_loop

if TYPE_CHECKING:
    from signalling.sessions import SessionInfo

logger = logging.getLogger(__name__)

#: Refusal reasons that are not a numeric limit but are counted with them.
INVALID_KEY = "invalid key"
ORIGIN = "origin"

LAG_INTERVAL = 0.5  # seconds between event-loop lag samples


def client_address(where: Any) -> str:
    """The client address of an ASGI scope, or ``where`` itself when it is a string."""
    if isinstance(where, str):
        return where
    client = where.get("client") or ("?",)
    return str(client[0])


class Metrics:
    """The counters of one serving process, with the event-loop lag sampler it owns."""

    def __init__(self) -> None:
        #: (api key or "", reason) -> refusals not yet written to the database
        self.pending_hits: Counter[tuple[str, str]] = Counter()
        #: (api key or "", reason) -> refusals since start (exported)
        self.refusals: Counter[tuple[str, str]] = Counter()
        #: api key -> peers that registered since start
        self.connects: Counter[str] = Counter()
        #: (api key, message type) -> client messages of sessions that have ended
        self.ended_messages: Counter[tuple[str, str]] = Counter()
        #: api key -> server frames sent to sessions that have ended
        self.ended_sent: Counter[str] = Counter()
        self.started_at = time.time()
        self._lag_max = 0.0
        self._lag_task: asyncio.Task[None] | None = None
        self._running = Running()

    # --- counting (called once per event, never per relayed frame) -------------------

    def limit_hit(self, api_key: str, reason: str, where: Any, asked: str | None = None
                  ) -> None:
        """Note that ``reason`` refused a client of ``api_key`` (from scope or address).

        ``asked``: the key the client asked for when it is counted under none (an
        unknown key), for the log line only.
        """
        from signalling.sessions import get_recorder

        self.pending_hits[(api_key, reason)] += 1
        self.refusals[(api_key, reason)] += 1
        address = client_address(where)
        named = api_key if asked is None else asked[:64]
        logger.warning("refused a client: key=%r reason=%r address=%s", named, reason,
                       address, extra={"api_key": named, "reason": reason,
                                       "address": address})
        get_recorder().wake()

    def take_pending(self) -> Counter[tuple[str, str]]:
        """Remove and return the refusal counts not yet written to the database."""
        taken = Counter(self.pending_hits)
        self.pending_hits.clear()
        return taken

    def connected(self, api_key: str) -> None:
        """A peer registered under ``api_key``."""
        self.connects[api_key] += 1
        self.ensure_started()

    def session_ended(self, info: SessionInfo) -> None:
        """Fold an ended session's message counters into the process totals."""
        for kind, n in info.by_type.items():
            self.ended_messages[(info.api_key, kind)] += n
        if info.heartbeats:
            self.ended_messages[(info.api_key, "HEARTBEAT")] += info.heartbeats
        self.ended_sent[info.api_key] += info.messages_out

    # --- event-loop lag --------------------------------------------------------------

    @property
    def lag_task(self) -> asyncio.Task[None] | None:
        """The lag sampler's task (None before :meth:`ensure_started`)."""
        return self._lag_task

    def ensure_started(self) -> None:
        """Start the lag sampler in the running loop if it is not running there."""
        if self._running.holds():  # one check per connection while the sampler runs
            return
        if not runs_on_a_running_loop(self._lag_task):
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._lag_task = loop.create_task(self._sample_lag(), name="peerhub-loop-lag")
        self._running.watch([self._lag_task])

    async def stop(self) -> None:
        """Stop the lag sampler."""
        task, self._lag_task = self._lag_task, None
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                if not task.cancelled():
                    raise

    async def _sample_lag(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(LAG_INTERVAL)
            lag = loop.time() - before - LAG_INTERVAL
            self._lag_max = max(self._lag_max, lag)

    def take_lag(self) -> float:
        """The largest event-loop lag seen since the previous call, in seconds."""
        lag, self._lag_max = self._lag_max, 0.0
        return max(lag, 0.0)


def get_metrics() -> Metrics:
    """The counters of this process's node.

    Called twice per connection (sessions opened and closed). The node module is taken
    from ``sys.modules`` once it is loaded: an import statement here (against the
    import cycle with :mod:`signalling.node`) cost about 5,600 instructions each time,
    most of it the import system's check that the module is not still initializing.
    """
    loaded = sys.modules.get("signalling.node")
    if loaded is None:
        from signalling.node import get_node

        return get_node().metrics
    return cast(Metrics, loaded.get_node().metrics)


def limit_hit(api_key: str, limit: str, where: Any, asked: str | None = None) -> None:
    """Note that ``limit`` refused something for ``api_key`` (from scope or address)."""
    get_metrics().limit_hit(api_key, limit, where, asked)


def take_pending() -> Counter[tuple[str, str]]:
    """Remove and return the counts not yet written."""
    return get_metrics().take_pending()
