"""Recording peer sessions in the database without ever making the relay wait.

Connections report ``opened``/``closed`` synchronously into an in-memory list; a
background task writes the list in batches, one transaction per batch, from one
dedicated thread that keeps its database connection. Live sessions get their
``last_seen`` and message counts refreshed every ``TOUCH_INTERVAL`` (bulk updates). At process
exit whatever is pending is written synchronously, and on start-up the sessions this
node left open (a crash) are closed with the reason ``node restarted``. The statements
for the rows themselves, one per batch and backend, are in :mod:`signalling.session_rows`.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from django.db import (
    DEFAULT_DB_ALIAS,
    DatabaseError,
    DataError,
    IntegrityError,
    connection,
    connections,
    transaction,
)
from django.utils import timezone

from signalling import metrics
from signalling.looptasks import Running, runs_on_a_running_loop
from signalling.protocol import storable_text
from signalling.session_rows import rows_for

if TYPE_CHECKING:
    from signalling.metrics import Metrics
    from signalling.rollup import Delta, RollupKey

logger = logging.getLogger(__name__)

TOUCH_INTERVAL = 60.0
PRUNE_INTERVAL = 3600.0  # seconds between SESSION_RETENTION_DAYS prunes
#: What a session's times are taken from: aware UTC, what ``timezone.now()`` gives with
#: ``USE_TZ`` (which peerhub's settings fix and a system check holds), without reading
#: the settings for each connection.
utc_now = partial(datetime.now, UTC)
FLUSH_INTERVAL = 0.5
#: Session events kept in memory while the database is unreachable; beyond it the
#: oldest are dropped (counted in ``SessionRecorder.dropped`` and logged).
MAX_PENDING = 100_000

@dataclass(eq=False, slots=True)
class SessionInfo:
    """What a connection knows about its session; counters are bumped on the hot path."""

    api_key: str
    peer_id: str
    transport: str
    remote_addr: str = ""
    user_agent: str = ""
    client_version: str = ""
    connected_at: datetime = field(default_factory=utc_now)
    messages_in: int = 0
    messages_out: int = 0
    heartbeats: int = 0
    #: client messages other than HEARTBEAT, by PeerJS type ("invalid": unparsable)
    by_type: dict[str, int] = field(default_factory=dict)
    disconnected_at: datetime | None = None
    close_reason: str = ""
    row_id: int | None = None
    rolled: bool = False  # its messages are in the usage rollups

    def __post_init__(self) -> None:
        # Cleaned at the door, the same on every database: text from the client loses
        # what PostgreSQL cannot store (NUL) and other control characters, and is cut to
        # its column's length. Short printable ASCII (the usual case) is kept as it is.
        addr, agent, version = self.remote_addr, self.user_agent, self.client_version
        every = addr + agent + version
        if (every.isascii() and every.isprintable() and len(addr) <= 64
                and len(agent) <= 255 and len(version) <= 32):
            return
        self.remote_addr = storable_text(addr, 64)
        self.user_agent = storable_text(agent, 255)
        self.client_version = storable_text(version, 32)


class SessionRecorder:
    """Batches session writes off the event loop's critical path."""

    def __init__(self, node: str, retention_days: int = 0,
                 counters: Metrics | None = None) -> None:
        self.node = node
        #: the node's counters (None: looked up at each event, for recorders of tests)
        self._counters = counters
        self.retention_days = retention_days  # 0: sessions are kept forever
        self._opened: list[SessionInfo] = []
        self._closed: list[SessionInfo] = []
        self._live: set[SessionInfo] = set()
        self._live_per_key: Counter[str] = Counter()
        self._peaks: dict[str, int] = {}  # key -> most live at once since the last write
        self._task: asyncio.Task[None] | None = None
        self._running = Running()
        self._recovered = False
        self._outage = 0  # failed attempts in a row while the database is unreachable
        #: Session events dropped so far: rows the database refused, or backlog overflow.
        self.dropped = 0
        self._executor = ThreadPoolExecutor(max_workers=1,
                                            thread_name_prefix="peerhub-sessions")
        atexit.register(self.flush_sync)

    def opened(self, info: SessionInfo) -> None:
        """A peer registered."""
        key = info.api_key
        self._live.add(info)
        self._opened.append(info)
        live_per_key = self._live_per_key
        live = live_per_key[key] = live_per_key[key] + 1
        if live > self._peaks.get(key, 0):
            self._peaks[key] = live
        (self._counters or metrics.get_metrics()).connected(key)
        if len(self._opened) + len(self._closed) > MAX_PENDING:  # (``pending``, inline)
            self._bound_backlog()
        if not self._running.holds():  # (``_ensure_task``'s first line, inline)
            self._ensure_task()

    def wake(self) -> None:
        """Make sure the writer runs (something other than sessions is pending)."""
        self._ensure_task()

    def closed(self, info: SessionInfo, reason: str) -> None:
        """A registered peer went away, for ``reason``."""
        if info.disconnected_at is not None:
            return
        info.disconnected_at = utc_now()
        info.close_reason = reason[:100]
        live = self._live
        if info in live:
            live.discard(info)
            key, live_per_key = info.api_key, self._live_per_key
            left = live_per_key[key] = live_per_key[key] - 1
            if left <= 0:
                del live_per_key[key]
        self._closed.append(info)
        (self._counters or metrics.get_metrics()).session_ended(info)
        if len(self._opened) + len(self._closed) > MAX_PENDING:
            self._bound_backlog()

    def live_sessions(self) -> list[SessionInfo]:
        """The sessions open in this process now (a copy)."""
        return list(self._live)

    @property
    def pending(self) -> int:
        """Events not yet written."""
        return len(self._opened) + len(self._closed)

    def _ensure_task(self) -> None:
        if self._running.holds():  # one check per connection while the writer runs
            return
        if not runs_on_a_running_loop(self._task):
            self._task = asyncio.get_running_loop().create_task(self._run(), name="peerhub-sessions")
        self._running.watch([self._task])

    async def _run(self) -> None:
        ticks_per_touch = int(TOUCH_INTERVAL / FLUSH_INTERVAL)
        ticks_per_prune = int(PRUNE_INTERVAL / FLUSH_INTERVAL)
        tick = 0
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            tick += 1
            touch = tick % ticks_per_touch == 0
            loop = asyncio.get_running_loop()
            if self.pending or touch or metrics.get_metrics().pending_hits:
                await loop.run_in_executor(self._executor, self.write, touch)
            if self.retention_days and tick % ticks_per_prune == 2:  # soon after start
                await loop.run_in_executor(self._executor, self.prune_old)

    def prune_old(self) -> int:
        """Delete closed sessions older than the retention (on the writer's thread)."""
        from signalling.retention import cutoff, prune

        try:
            return prune(cutoff(timezone.now(), self.retention_days))
        except DatabaseError:
            logger.exception("could not prune old sessions; will retry in an hour")
            connection.close()
            return 0

    def write(self, touch: bool = False) -> None:
        """Write what is pending (synchronously); with ``touch``, refresh live rows.

        The whole batch is one transaction. If the database refuses it, the batch is
        written again one row at a time, each in a savepoint: a row the database cannot
        store (``DataError``, ``IntegrityError``) is dropped, counted in ``dropped`` and
        logged in one line for the whole batch, and every other row is stored. Any other
        database error (unreachable, locked, read-only) keeps the batch for the next
        attempt (bounded by ``MAX_PENDING``); the outage is logged once when it starts
        and once when it ends.
        """
        opened, self._opened = self._opened, []
        closed, self._closed = self._closed, []
        hits = metrics.take_pending()
        # A session that opened and closed since the last write is in both lists and has
        # no row yet: its INSERT carries its end. Only rows written earlier need UPDATE.
        ended = [i for i in closed if i.row_id is not None]
        peaks, self._peaks = self._peaks, {}
        if touch:  # every hour with live peers gets a peak, even with no new connection
            for key, n in self._live_per_key.items():
                peaks[key] = max(peaks.get(key, 0), n)
        try:
            with transaction.atomic():
                self._recover_once()
                self._insert(opened)
                self._finish(ended)
                rolled = self._roll_up(opened, ended, peaks)
                self._write_limit_hits(hits)
                if touch:
                    self._touch(list(self._live))
        except (DataError, IntegrityError):
            # Some row is one the database will not take: find it, store the others.
            for info in opened:
                info.row_id = None  # the transaction was rolled back
            try:
                rolled = self._write_rows_one_by_one(opened, ended, hits, touch, peaks)
            except DatabaseError as exc:
                self._keep_for_later(opened, closed, hits, exc, peaks)
                return
        except DatabaseError as exc:  # the database is unreachable, locked, read-only...
            self._keep_for_later(opened, closed, hits, exc, peaks)
            return
        for info in rolled:
            info.rolled = True
        self._recovered = True
        if self._outage:
            logger.warning("session writes work again after %d failed attempts",
                           self._outage)
            self._outage = 0

    def _keep_for_later(self, opened: list[SessionInfo], closed: list[SessionInfo],
                        hits: Counter[tuple[str, str]], exc: DatabaseError,
                        peaks: dict[str, int] | None = None) -> None:
        """Put a batch back after a database outage; beyond MAX_PENDING drop the oldest."""
        for info in opened:
            info.row_id = None  # the transaction was rolled back
        connection.close()  # a fresh connection next time
        if not self._outage:
            logger.warning("cannot write session events (%s); keeping them and retrying",
                           _first_line(exc))
        self._outage += 1
        self._opened[:0] = opened
        self._closed[:0] = closed
        metrics.get_metrics().pending_hits.update(hits)
        for key, n in (peaks or {}).items():
            self._peaks[key] = max(self._peaks.get(key, 0), n)
        self._bound_backlog()

    def _bound_backlog(self) -> None:
        excess = self.pending - MAX_PENDING
        if excess <= 0:
            return
        from_closed = min(excess, len(self._closed))
        del self._closed[:from_closed]
        del self._opened[:excess - from_closed]
        self.dropped += excess
        logger.warning("session backlog over %d events: dropped the %d oldest",
                       MAX_PENDING, excess)

    def _write_rows_one_by_one(self, opened: list[SessionInfo], ended: list[SessionInfo],
                               hits: Counter[tuple[str, str]], touch: bool,
                               peaks: dict[str, int]) -> list[SessionInfo]:
        """Write each row in its own savepoint; count and log (once) the refused ones.

        Return the sessions whose messages went into the usage rollups (those stored)."""
        rolled: list[SessionInfo] = []
        refused: list[str] = []

        def attempt(what: str, write: Any, *args: Any) -> None:
            try:
                with transaction.atomic():
                    write(*args)
            except (DataError, IntegrityError) as exc:  # this row; others propagate
                refused.append(f"{what[:80]}: {_first_line(exc)}")

        with transaction.atomic():
            attempt("recovery", self._recover_once)
            for info in opened:
                attempt(f"session {info.peer_id!r}", self._insert, [info])
            for info in ended:
                attempt(f"end of session {info.peer_id!r}", self._finish, [info])
            for hit, count in hits.items():
                attempt(f"limit hit {hit!r}", self._write_limit_hits, Counter({hit: count}))
            if touch:
                for info in list(self._live):
                    attempt(f"refresh of session {info.peer_id!r}", self._touch, [info])
            stored = [i for i in opened if i.row_id is not None]

            def roll() -> None:
                rolled.extend(self._roll_up(stored, ended, peaks))

            attempt("usage rollups", roll)
        if refused:
            self.dropped += len(refused)
            logger.error("the database refused %d of this batch's rows; dropped them, "
                         "stored the rest (first: %s)", len(refused), refused[0])
        return rolled

    def _roll_up(self, opened: list[SessionInfo], ended: list[SessionInfo],
                 peaks: dict[str, int]) -> list[SessionInfo]:
        """Add this batch to the hourly usage rollups; return the sessions whose
        messages it added (marked once the transaction commits)."""
        from signalling import rollup

        rolled = [i for i in (*opened, *ended) if i.disconnected_at is not None and not i.rolled]
        rollup.add(batch_deltas(self.node, opened, rolled, peaks, timezone.now()))
        return rolled

    def _roll_up_stale(self, stale: Any) -> None:
        """Add the messages of sessions a crash left open to the rollups."""
        from signalling import rollup

        deltas: dict[rollup.RollupKey, rollup.Delta] = {}
        for r in stale.values("connected_at", "api_key", "messages_in", "messages_out",
                              "heartbeats").iterator():
            d = deltas.setdefault((rollup.hour_of(r["connected_at"]), r["api_key"], self.node),
                                  rollup.Delta())
            d.messages_in += r["messages_in"]
            d.messages_out += r["messages_out"]
            d.heartbeats += r["heartbeats"]
        rollup.add(deltas)

    async def stop(self) -> None:
        """Stop the writer task and write what is pending now (on the writer's thread)."""
        task, self._task = self._task, None
        loop = asyncio.get_running_loop()
        if task is not None and not task.done() and task.get_loop() is loop:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self.pending or metrics.get_metrics().pending_hits:
            await loop.run_in_executor(self._executor, self.write)

    def flush_sync(self) -> None:
        """Write everything pending now (at exit); live sessions are closed first."""
        for info in list(self._live):
            self.closed(info, "server stopped")
        if self.pending:
            self.write()

    def _recover_once(self) -> None:
        from signalling.models import PeerSession

        if self._recovered:  # set by write() once the transaction is committed
            return
        stale = PeerSession.objects.filter(node=self.node, disconnected_at__isnull=True)
        self._roll_up_stale(stale)
        count = stale.update(disconnected_at=timezone.now(), close_reason="node restarted")
        if count:
            logger.warning("closed %d sessions this node left open", count)

    def _insert(self, infos: list[SessionInfo]) -> None:
        """Insert rows for ``infos`` (ended ones complete) and remember their ids."""
        db = connections[DEFAULT_DB_ALIAS]
        rows_for(db.vendor).insert(db, self.node, infos)

    def _finish(self, infos: list[SessionInfo]) -> None:
        db = connections[DEFAULT_DB_ALIAS]
        rows_for(db.vendor).finish(db, infos)

    def _write_limit_hits(self, hits: Counter[tuple[str, str]]) -> None:
        from django.db.models import F

        from signalling.models import LimitHit

        now = timezone.now()
        for (api_key, limit), count in hits.items():
            row, _ = LimitHit.objects.get_or_create(api_key=api_key[:64], limit=limit)
            LimitHit.objects.filter(pk=row.pk).update(count=F("count") + count, last_at=now)

    def _touch(self, infos: list[SessionInfo]) -> None:
        db = connections[DEFAULT_DB_ALIAS]
        rows_for(db.vendor).touch(db, infos, timezone.now())


def _first_line(exc: BaseException) -> str:
    """An exception's first line, short, for a one-line log entry."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200] if text else ''}"


def batch_deltas(node: str, opened: list[SessionInfo], rolled: list[SessionInfo],
                 peaks: dict[str, int], now: datetime) -> dict[RollupKey, Delta]:
    """What one batch adds to the hourly rollups, per (hour, key, node): a connection
    for each session inserted, the messages of each session rolled (ended), and the
    peaks of live peers in ``now``'s hour."""
    from signalling.rollup import Delta, hour_of

    node = node[:100]
    deltas: dict[RollupKey, Delta] = {}

    def delta(hour: datetime, key: str) -> Delta:
        made = deltas.get((hour, key[:64], node))
        if made is None:
            made = deltas[(hour, key[:64], node)] = Delta()
        return made

    # grouped in C first: a batch's sessions share a handful of (hour, key) pairs
    started = Counter([(i.connected_at.replace(minute=0, second=0, microsecond=0), i.api_key)
                       for i in opened])
    for (hour, key), n in started.items():
        delta(hour, key).connections += n
    sums: dict[tuple[datetime, str], list[int]] = {}
    for i in rolled:
        if i.messages_in or i.messages_out or i.heartbeats:  # else it adds nothing
            pair = (i.connected_at.replace(minute=0, second=0, microsecond=0), i.api_key)
            found = sums.get(pair)
            if found is None:
                sums[pair] = [i.messages_in, i.messages_out, i.heartbeats]
            else:
                found[0] += i.messages_in
                found[1] += i.messages_out
                found[2] += i.heartbeats
    for (hour, key), (m_in, m_out, beats) in sums.items():
        d = delta(hour, key)
        d.messages_in += m_in
        d.messages_out += m_out
        d.heartbeats += beats
    hour = hour_of(now)
    for key, n in peaks.items():
        d = delta(hour, key)
        d.peak_live = max(d.peak_live, n)
    return deltas


def get_recorder() -> SessionRecorder:
    """The session recorder of this process (owned by its node)."""
    from signalling.node import get_node

    return get_node().recorder
