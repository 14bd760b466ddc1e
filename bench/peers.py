"""Load-generator peers: one asyncio protocol per PeerJS websocket, no library.

A :class:`Peer` does the upgrade, waits for ``OPEN``, answers pings and counts relayed
frames into a shared :class:`Tally` without parsing them; a hook may look closer (the
latency scenario does). :func:`open_peers` opens many with bounded concurrency and
:class:`Heartbeat` keeps them alive the PeerJS way.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import cast

from bench import wsproto as w

logger = logging.getLogger(__name__)

RELAY_PREFIX = b'{"type":"CANDIDATE"'
OPEN_PAYLOAD = b'{"type":"OPEN"}'  # the OPEN both servers send
OPEN_FRAME = b"\x81\x0f" + OPEN_PAYLOAD  # ... as one unmasked text frame
HEARTBEAT_FRAME = w.client_frame(b'{"type":"HEARTBEAT"}')


@dataclass(frozen=True, slots=True)
class Target:
    """Where a PeerServer listens."""

    name: str
    host: str
    port: int
    mount: str = "/"
    key: str = "peerjs"

    def request(self, peer_id: str, token: str) -> bytes:
        """The upgrade request for ``peer_id``."""
        path = w.peerjs_path(self.mount, self.key, peer_id, token)
        return w.upgrade_request(self.host, self.port, path)


class ServerRefused(ConnectionError):
    """The server's first frame was not OPEN (ERROR, ID-TAKEN, ...)."""


@dataclass(slots=True)
class Tally:
    """Counts shared by a group of peers; ``done`` fires when ``received`` reaches ``goal``."""

    received: int = 0
    goal: int = 0
    last_at: float = 0.0
    done: asyncio.Event = field(default_factory=asyncio.Event)
    other: Counter[str] = field(default_factory=Counter)

    def expect(self, more: int) -> None:
        """Raise the goal by ``more`` relayed frames and re-arm ``done``."""
        self.goal = self.received + more
        self.done.clear()
        if more <= 0:
            self.done.set()


RelayHook = Callable[["Peer", bytes, float], None]


Report = Callable[["Peer", "BaseException | None"], None]
"""Told once how a connection attempt ended: ``None`` at OPEN, else why it failed."""


class Peer(asyncio.Protocol):
    """One PeerJS client websocket.

    Until its attempt is decided the peer holds a :data:`Report` callback; it calls it
    once, at ``OPEN`` or at the first failure, and drops it.
    """

    __slots__ = ("peer_id", "tally", "hook", "is_open", "closed", "close_code", "transport",
                 "connecting", "_request", "_head", "_parser", "_report")

    def __init__(self, peer_id: str, request: bytes, tally: Tally, report: Report):
        self.peer_id = peer_id
        self.tally = tally
        self.hook: RelayHook | None = None
        self.is_open = False
        self.closed = False
        self.close_code: int | None = None
        self.transport: asyncio.Transport | None = None
        self.connecting: asyncio.Task[object] | None = None  # the connect, until it ends
        self._request = request
        self._head = b""
        self._parser: w.FrameParser | None = None
        self._report: Report | None = report

    # --- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        if self._parser is not None:
            self._parser.feed(data)
            return
        buffer = self._head + data if self._head else data
        end = buffer.find(w.HEADER_END)
        if end < 0:
            self._head = buffer
            return
        self._head = b""
        self._parser = parser = w.FrameParser(self._on_frame)
        if not buffer.startswith(w.SWITCHING_PREFIX):  # the usual 101 needs no split
            try:
                w.check_switching(buffer[:end])
            except w.HandshakeError as exc:
                self._fail(exc)
                return
        rest = buffer[end + len(w.HEADER_END):]
        if rest.startswith(OPEN_FRAME):  # the usual OPEN needs no parse
            rest = rest[len(OPEN_FRAME):]
            self._opened()
        if rest:
            parser.feed(rest)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._report is not None:
            self._decide(exc or ConnectionError("closed before OPEN"))
        self._parser = None  # it holds a method of this peer: refcounts can free both

    # --- the attempt --------------------------------------------------------------------

    def connect_done(self, task: asyncio.Task[object]) -> None:
        """Done callback of :attr:`connecting`: a connect that failed fails the attempt."""
        self.connecting = None
        if not task.cancelled():
            exc = task.exception()
            if exc is not None:
                self._decide(exc)

    def time_out(self) -> None:
        """Fail the attempt with :class:`TimeoutError` if it is still undecided, and drop
        the connection (or stop connecting)."""
        if self._report is not None:
            self._decide(TimeoutError())
            self.close()

    @property
    def deciding(self) -> bool:
        """Whether the attempt is still undecided (neither OPEN nor failed)."""
        return self._report is not None

    def _decide(self, exc: BaseException | None) -> None:
        report = self._report
        if report is not None:
            self._report = None
            report(self, exc)

    def _opened(self) -> None:
        self.is_open = True
        self._decide(None)

    # --- frames -----------------------------------------------------------------------

    def _on_frame(self, opcode: int, payload: bytes) -> None:
        if opcode == w.OP_TEXT or opcode == w.OP_BINARY:
            if payload.startswith(RELAY_PREFIX) and self._report is None:
                self._on_relay(payload)
            else:
                self._on_other(payload)
        elif opcode == w.OP_PING:
            self.send(w.client_frame(payload, w.OP_PONG))
        elif opcode == w.OP_CLOSE:
            self._on_close(payload)

    def _on_relay(self, payload: bytes) -> None:
        tally = self.tally
        tally.received += 1
        now = time.perf_counter()
        tally.last_at = now
        if self.hook is not None:
            self.hook(self, payload, now)
        if tally.received >= tally.goal:
            tally.done.set()

    def _on_other(self, payload: bytes) -> None:
        if payload == OPEN_PAYLOAD and self._report is not None:
            self._opened()  # the OPEN that came after the 101 in a read of its own
            return
        kind = frame_type(payload)
        if self._report is not None:
            if kind == "OPEN":
                self._opened()
            else:
                self._fail(ServerRefused(payload.decode("utf-8", "replace")[:200]))
            return
        self.tally.other[kind] += 1

    def _on_close(self, payload: bytes) -> None:
        self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
        self.closed = True
        self.send(w.close_frame(1000))
        if self.transport is not None:
            self.transport.close()

    def _fail(self, exc: Exception) -> None:
        self._decide(exc)
        self.close()

    # --- actions ----------------------------------------------------------------------

    def send(self, frame: bytes) -> None:
        """Write one prepared frame (dropped once the socket is closed)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame)

    def close(self) -> None:
        """Drop the TCP connection with a normal close (the server sees the peer go
        away); an attempt still undecided fails."""
        self.closed = True
        if self._report is not None:
            self._decide(ConnectionError("closed before OPEN"))
        if self.transport is not None:
            self.transport.close()
        elif self.connecting is not None:
            self.connecting.cancel()  # not connected yet: the connect closes its socket


def frame_type(payload: bytes) -> str:
    """The ``type`` of a server frame, or a short label if it is not a JSON object."""
    try:
        obj = json.loads(payload)
    except ValueError:
        return "<not json>"
    return str(obj.get("type", "<no type>")) if isinstance(obj, dict) else "<not object>"


# --- opening many -------------------------------------------------------------------


@dataclass(slots=True)
class OpenResult:
    """What :func:`open_peers` achieved."""

    peers: list[Peer]
    failures: Counter[str]
    elapsed: float

    @property
    def rate(self) -> float:
        """Connections that reached OPEN per second."""
        return len(self.peers) / self.elapsed if self.elapsed > 0 else 0.0


def dial(loop: asyncio.AbstractEventLoop, target: Target, peer_id: str, request: bytes,
         tally: Tally, report: Report) -> Peer:
    """Start connecting ``peer_id`` (``request`` is its upgrade request); ``report``
    hears how the attempt ends."""
    peer = Peer(peer_id, request, tally, report)
    task = loop.create_task(loop.create_connection(lambda: peer, target.host, target.port))
    peer.connecting = task
    task.add_done_callback(peer.connect_done)
    return peer


async def open_peer(target: Target, peer_id: str, tally: Tally, timeout: float,
                    token: str | None = None) -> Peer:
    """Connect ``peer_id`` (with ``token``, default ``tok-{id}``) and wait for its OPEN
    (the socket is closed on failure)."""
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[None] = loop.create_future()

    def report(_peer: Peer, exc: BaseException | None) -> None:
        if outcome.done():
            return
        if exc is None:
            outcome.set_result(None)
        else:
            outcome.set_exception(exc)

    request = target.request(peer_id, token if token is not None else "tok-" + peer_id)
    peer = dial(loop, target, peer_id, request, tally, report)
    timer = loop.call_later(timeout, peer.time_out)
    try:
        await outcome
    except BaseException:
        peer.close()
        raise
    finally:
        timer.cancel()
    return peer


class Opening:
    """One :func:`open_peers` batch: the next id is dialled from the callback that
    decides an attempt, so no coroutine waits per connection, and one timer per batch
    checks the deadlines (the attempts start in order, so theirs are in order too)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, target: Target, ids: Iterable[str],
                 tally: Tally, timeout: float):
        self.loop = loop
        self.target = target
        self.tally = tally
        self.timeout = timeout
        self._requests = w.UpgradeRequests(target.host, target.port, target.mount, target.key)
        self.peers: list[Peer] = []
        self.failures: Counter[str] = Counter()
        self.done: asyncio.Future[None] = loop.create_future()
        self._pending: Iterator[str] = iter(list(ids))
        self._in_flight = 0
        self._deadlines: deque[tuple[float, Peer]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def start(self, concurrency: int) -> None:
        """Dial the first ``concurrency`` ids."""
        for _ in range(concurrency):
            if not self._dial_next():
                break
        if self._in_flight == 0:
            self._finish()

    def stop(self) -> None:
        """Dial no more and forget the deadlines (every attempt is decided, or nobody
        waits any more)."""
        self._pending = iter(())
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._deadlines.clear()

    def _dial_next(self) -> bool:
        peer_id = next(self._pending, None)
        if peer_id is None:
            return False
        self._in_flight += 1
        peer = dial(self.loop, self.target, peer_id,
                    self._requests.request(peer_id, "tok-" + peer_id), self.tally, self._report)
        self._deadlines.append((self.loop.time() + self.timeout, peer))
        if self._timer is None:
            self._timer = self.loop.call_at(self._deadlines[0][0], self._check_deadlines)
        return True

    def _report(self, peer: Peer, exc: BaseException | None) -> None:
        self._in_flight -= 1
        if exc is None:
            self.peers.append(peer)
        elif isinstance(exc, (OSError, TimeoutError)):
            self.failures[failure_label(exc)] += 1
        elif not self.done.done():
            self.done.set_exception(exc)  # a bug, not a failed connection
            self.stop()
        if not self._dial_next() and self._in_flight == 0:
            self._finish()

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def _check_deadlines(self) -> None:
        self._timer = None
        deadlines = self._deadlines
        now = self.loop.time()
        while deadlines:
            deadline, peer = deadlines[0]
            if not peer.deciding:
                deadlines.popleft()
            elif deadline <= now:
                deadlines.popleft()
                peer.time_out()
            else:
                if self._timer is None:  # a dial from a time-out above may have set one
                    self._timer = self.loop.call_at(deadline, self._check_deadlines)
                break


async def open_peers(target: Target, ids: Iterable[str], tally: Tally, concurrency: int,
                     timeout: float = 20.0) -> OpenResult:
    """Open every id with at most ``concurrency`` handshakes in flight; each that does
    not reach OPEN within ``timeout`` seconds of its start counts as a failure."""
    with collector_paused():
        opening = Opening(asyncio.get_running_loop(), target, ids, tally, timeout)
        start = time.perf_counter()
        opening.start(concurrency)
        try:
            await opening.done
        finally:
            opening.stop()
        elapsed = time.perf_counter() - start
    return OpenResult(opening.peers, opening.failures, elapsed)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Hold off Python's cyclic garbage collector (if it runs) for the block.

    Opening peers makes no cyclic garbage (measured: none per connection), so each pass
    of the collector during a batch would only walk the peers opened so far.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def failure_label(exc: BaseException) -> str:
    """A short, countable description of a failed connection."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    text = str(exc)
    return f"{type(exc).__name__}: {text[:80]}" if text else type(exc).__name__


def close_all(peers: Iterable[Peer]) -> None:
    """Drop every peer's connection."""
    for peer in peers:
        peer.close()


# --- liveness -----------------------------------------------------------------------


class Heartbeat:
    """Send ``HEARTBEAT`` from every peer once per ``interval``, spread evenly.

    ``peers`` may grow while it runs (the capacity scenario adds peers step by step).
    """

    def __init__(self, peers: list[Peer], interval: float = 5.0, tick: float = 0.1):
        self.peers = peers
        self.slots = max(1, round(interval / tick))
        self.tick = tick
        self.sent = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin sending in the background."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop sending."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                logger.debug("heartbeat stopped after %d frames", self.sent)
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        slot = 0
        while True:
            for peer in self.peers[slot::self.slots]:
                if not peer.closed:
                    peer.send(HEARTBEAT_FRAME)
                    self.sent += 1
            slot = (slot + 1) % self.slots
            due += self.tick
            await asyncio.sleep(max(0.0, due - loop.time()))
