"""Load-generator peers: one asyncio protocol per PeerJS websocket, no library.

A :class:`Peer` does the upgrade, waits for ``OPEN``, answers pings and counts relayed
frames into a shared :class:`Tally` without parsing them; a hook may look closer (the
latency scenario does). :func:`open_peers` opens many with bounded concurrency and
:class:`Heartbeat` keeps them alive the PeerJS way.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import cast

from bench import wsproto as w

logger = logging.getLogger(__name__)

RELAY_PREFIX = b'{"type":"CANDIDATE"'
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


class Peer(asyncio.Protocol):
    """One PeerJS client websocket."""

    def __init__(self, peer_id: str, request: bytes, tally: Tally):
        self.peer_id = peer_id
        self.tally = tally
        self.hook: RelayHook | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed = False
        self.close_code: int | None = None
        self._request = request
        self._head = b""
        self._parser: w.FrameParser | None = None
        self.transport: asyncio.Transport | None = None

    # --- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        if self._parser is not None:
            self._parser.feed(data)
            return
        self._head += data
        split = w.split_response(self._head)
        if split is None:
            return
        head, rest = split
        self._head = b""
        try:
            w.check_switching(head)
        except w.HandshakeError as exc:
            self._fail(exc)
            return
        self._parser = w.FrameParser(self._on_frame)
        if rest:
            self._parser.feed(rest)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed before OPEN"))

    # --- frames -----------------------------------------------------------------------

    def _on_frame(self, opcode: int, payload: bytes) -> None:
        if opcode == w.OP_TEXT or opcode == w.OP_BINARY:
            if payload.startswith(RELAY_PREFIX) and self.opened.done():
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
        kind = frame_type(payload)
        if not self.opened.done():
            if kind == "OPEN":
                self.opened.set_result(None)
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
        if not self.opened.done():
            self.opened.set_exception(exc)
        self.close()

    # --- actions ----------------------------------------------------------------------

    def send(self, frame: bytes) -> None:
        """Write one prepared frame (dropped once the socket is closed)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame)

    def close(self) -> None:
        """Drop the TCP connection (the server sees the peer go away)."""
        self.closed = True
        if not self.opened.done():
            self.opened.cancel()  # nobody waits for it any more
        if self.transport is not None:
            self.transport.close()


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


async def open_peer(target: Target, peer_id: str, tally: Tally, timeout: float,
                    token: str | None = None) -> Peer:
    """Connect ``peer_id`` (with ``token``, default ``tok-{id}``) and wait for its OPEN
    (the socket is closed on failure)."""
    loop = asyncio.get_running_loop()
    request = target.request(peer_id, token if token is not None else "tok-" + peer_id)
    peer: Peer | None = None
    try:
        async with asyncio.timeout(timeout):
            _, peer = await loop.create_connection(lambda: Peer(peer_id, request, tally),
                                                   target.host, target.port)
            await peer.opened
    except (TimeoutError, ConnectionError):
        if peer is not None:
            peer.close()
        raise
    return peer


async def open_peers(target: Target, ids: Iterable[str], tally: Tally, concurrency: int,
                     timeout: float = 20.0) -> OpenResult:
    """Open every id with at most ``concurrency`` handshakes in flight."""
    pending = iter(list(ids))
    peers: list[Peer] = []
    failures: Counter[str] = Counter()

    async def worker() -> None:
        for peer_id in pending:
            try:
                peers.append(await open_peer(target, peer_id, tally, timeout))
            except (OSError, TimeoutError) as exc:
                failures[failure_label(exc)] += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return OpenResult(peers, failures, time.perf_counter() - start)


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
