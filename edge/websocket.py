"""One accepted websocket bridged to one ASGI application instance.

The opening handshake has been read by :mod:`edge.http`; this protocol owns the
connection from then on: RFC 6455 frames (:mod:`peerhub.wsframes`) in, ASGI events to the
application; ASGI messages out, frames written once per loop iteration (a burst to one
peer is one system call). Any ASGI websocket application works (the PeerJS consumer, an
echo application for Autobahn|Testsuite).

Liveness is the owner's sweep (:meth:`WebSocket.check_alive`): a socket that sent nothing
for a ping interval gets a ping, one that then stays silent for another is dropped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from types import CoroutineType
from typing import Protocol

from edge import trickle
from edge.options import WebSocketOptions
from edge.types import ASGIApp, Message, Scope
from peerhub import wsframes as wf
from signalling.ratelimit import SHARED_BUCKET, TokenBucket

logger = logging.getLogger(__name__)

#: ``scope["extensions"]`` of every websocket (one shared, read-only dict).
EXTENSIONS: dict[str, dict[str, object]] = {SHARED_BUCKET: {}}
SENDABLE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011})
#: Received messages waiting for the application before reading from the socket pauses.
HIGH_WATER = 256
LOW_WATER = 64
#: Seconds a closing socket waits for the client's close frame.
CLOSE_TIMEOUT = 5.0
#: Where SO_RCVLOWAT cannot be used (:mod:`edge.trickle`: TLS, not Linux), a read this
#: small that leaves a frame unfinished is a trickle (browsers write each frame whole):
#: the socket is then read again only after DRIP_PAUSE seconds, so that a sender
#: dripping a frame in tiny writes costs reads per DRIP_PAUSE, not per write.
DRIP_READ = 512
DRIP_PAUSE = 0.05

CONNECTING, OPEN, CLOSING, CLOSED = range(4)
#: ``WebSocket._drip_mark`` of a socket whose frame in progress is known to drip.
DRIPPING = (-1, -1)


class SocketHost(Protocol):
    """What a websocket needs from the server that accepted it."""

    sockets: set[WebSocket]
    #: The loop the server serves on (None: the running loop).
    loop: asyncio.AbstractEventLoop | None
    #: Whether the application running now has more received events waiting: set by
    #: :meth:`WebSocket.receive` as it hands one over. While it has, the frames it sends
    #: are held to the end of the loop iteration and written together (a burst to one
    #: peer is one system call); otherwise a frame to a socket with nothing held is
    #: written at once. Only the batching depends on it: the order and the send-buffer
    #: cap hold either way, so a value left by another task is harmless.
    more_waiting: bool

    def log_action(self, verb: str, path: str, client: tuple[str, int]) -> None:
        """One access-log line (``WSCONNECT``, ``WSDISCONNECT``, ``WSREJECT``)."""

    def release(self, ip: str) -> None:
        """The connection counted for ``ip`` closed."""


def refusal_frame(text: str) -> bytes:
    """A PeerJS ``ERROR`` text frame with ``text`` as its message."""
    return wf.encode_frame(wf.OP_TEXT, json.dumps(
        {"type": "ERROR", "payload": {"msg": text}}).encode())


class WebSocket(asyncio.Protocol):
    """One accepted websocket, bridged to one ASGI application instance."""

    __slots__ = ("host", "options", "transport", "scope", "key", "state", "reader", "events",
                 "waiter", "paused", "seen", "ping_sent", "close_code", "_close_timer",
                 "_limit", "_out", "_loop", "task", "_counted_ip", "_bucket", "_others_seen",
                 "_drip_timer", "_lowat", "_lowsock", "_drip_mark", "_wrote")

    def __init__(self, host: SocketHost, options: WebSocketOptions,
                 transport: asyncio.Transport, scope: Scope, key: bytes,
                 application: ASGIApp, counted_ip: str | None = None):
        self.host = host
        self.options = options
        self.transport = transport
        self.scope = scope
        self.key = key
        self.state = CONNECTING
        self.reader = wf.FrameReader(options.max_message_size)
        self.events: list[Message] = [{"type": "websocket.connect"}]  # rarely more than one
        self.waiter: asyncio.Future[None] | None = None
        self.paused = False
        self.seen = True
        self.ping_sent = 0.0
        self.close_code = wf.CLOSE_ABNORMAL
        self._close_timer: asyncio.TimerHandle | None = None
        self._limit = options.send_buffer_limit
        self._out: list[bytes] = []  # frames written in this loop iteration, not yet sent
        # the server's loop: get_running_loop() is a getpid() system call per socket
        self._loop = host.loop or asyncio.get_running_loop()
        self._counted_ip = counted_ip  # the address this connection is counted for
        self._bucket: TokenBucket | None = None  # made at the first frame it must count
        self._others_seen = 0  # the reader's other_frames already charged (or not limited)
        self._drip_timer: asyncio.TimerHandle | None = None
        self._lowat = trickle.EVERY_BYTE  # the socket's SO_RCVLOWAT; -1: not available
        self._lowsock: socket.socket | None = None  # found when first needed
        # the kernel's (bytes, segments) received when the frame in progress was first
        # left unfinished; DRIPPING once it is known to drip (edge.trickle.dripped)
        self._drip_mark: tuple[int, int] | None = None
        self._wrote = False  # a frame went out at once in this loop iteration
        host.sockets.add(self)
        # The application's own coroutine is the task (no wrapper coroutine: each frame
        # in the chain stays alive, about 240 bytes, for as long as the peer is
        # connected); its end is handled by _application_done.
        # create_task at once for a coroutine (every ASGI 3 application): ensure_future
        # is five Python-level calls per socket before it gets there.
        run = application(scope, self.receive, self.send)
        self.task: asyncio.Future[None] | None = (
            self._loop.create_task(run) if type(run) is CoroutineType
            else asyncio.ensure_future(run, loop=self._loop))
        self.task.add_done_callback(self._application_done)

    # --- from the socket --------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self.seen = True
        reader = self.reader
        try:
            frames = reader.feed(data)
        except wf.WebSocketError as exc:
            self._fail(exc.code, exc.reason)
            return
        if reader.other_frames != self._others_seen and not self._others_within_rate():
            return
        if reader.missing or self._lowat > trickle.EVERY_BYTE:
            self._trickled(len(data))
        for opcode, payload in frames:
            if opcode == wf.OP_TEXT:
                if self.state != OPEN:
                    continue
                try:
                    text = payload.decode()
                except UnicodeDecodeError:
                    self._fail(wf.CLOSE_INVALID_DATA, "text is not UTF-8")
                    return
                self._push({"type": "websocket.receive", "text": text})
            elif opcode == wf.OP_BINARY:
                if self.state == OPEN:
                    self._push({"type": "websocket.receive", "bytes": payload})
            elif opcode == wf.OP_PING:
                if self.state == OPEN:
                    self._queue(wf.encode_frame(wf.OP_PONG, payload))
            elif opcode == wf.OP_CLOSE:
                self._client_closed(payload)
                return
            # OP_PONG: being here is enough (self.seen)

    def _others_within_rate(self) -> bool:
        """Charge every frame read since the last call that was not a whole data message
        (pings, pongs, empty and other fragments: the reader's ``other_frames``) to the
        socket's bucket; close 1008 past it.

        Whole messages are the application's to count; the rest would otherwise make
        the server work for free. The bucket is the application's own message bucket
        once it shared it (:data:`SHARED_BUCKET`: the PeerJS consumer does, so that a
        peer has one rate for messages and pongs together); until then one of the
        edge's, at ``frame_rate``.
        """
        others = self.reader.other_frames
        extra, self._others_seen = others - self._others_seen, others
        bucket = self._bucket
        if bucket is None and not self.options.frame_rate:
            return True
        now = time.monotonic()
        if bucket is None:  # most sockets never send a frame that is not a message
            rate = self.options.frame_rate or 0.0
            bucket = self._bucket = TokenBucket(rate, self.options.frame_burst, now)
        for _ in range(extra):
            if not bucket.take(now):
                logger.info("closing a websocket over its frame rate")
                if self.state == OPEN and self.options.rate_error:
                    self._flush()
                    self.transport.write(refusal_frame(self.options.rate_error))
                self._fail(wf.CLOSE_POLICY, "rate limit")
                return False
        return True

    def _trickled(self, size: int) -> None:
        """After a read of ``size`` bytes that left a frame unfinished, or finished the
        one that was: wake for this socket only when the frame can be finished
        (:mod:`edge.trickle`), or, without SO_RCVLOWAT, hold a trickling socket."""
        missing = self.reader.missing
        if self._lowat >= 0 and self._low_water(trickle.wake_threshold(missing)):
            if not missing:
                self._drip_mark = None
            elif self._dripping() and self._drip_timer is None:
                self._hold(trickle.DRIP_HOLD)
            return
        if missing and size < DRIP_READ and self._drip_timer is None:
            self._hold(DRIP_PAUSE)

    def _dripping(self) -> bool:
        """Whether the unfinished frame arrives in tiny segments (the kernel's counts
        since it was first left unfinished: :func:`edge.trickle.dripped`). The first
        time it is found to, the socket's receive buffer is fixed."""
        mark = self._drip_mark
        if mark is DRIPPING:
            return True
        sock = self._lowsock
        if sock is None:
            return False
        now = trickle.received(sock)
        if now is None:
            return False
        if mark is None:
            self._drip_mark = now
            return False
        if not trickle.dripped(mark, now):
            return False
        self._drip_mark = DRIPPING
        trickle.fix_buffer(sock)
        return True

    def _hold(self, seconds: float) -> None:
        """Leave the socket unread for ``seconds``."""
        self.transport.pause_reading()
        self._drip_timer = self._loop.call_later(seconds, self._drip_resume)

    def _low_water(self, level: int) -> bool:
        """Set the socket's SO_RCVLOWAT to ``level``; False if it cannot be set here."""
        if level == self._lowat:
            return True
        sock = self._lowsock
        if sock is None:
            sock = self._lowsock = trickle.low_water_socket(self.transport)
        if sock is None or not trickle.set_low_water(sock, level):
            self._lowat = -1
            return False
        self._lowat = level
        return True

    def _drip_resume(self) -> None:
        self._drip_timer = None
        if not self.paused and self.state != CLOSED and not self.transport.is_closing():
            self.transport.resume_reading()

    def _client_closed(self, payload: bytes) -> None:
        try:
            code = wf.parse_close(payload)
        except wf.WebSocketError as exc:
            self._fail(exc.code, exc.reason)
            return
        if self.state == OPEN:
            reply = wf.CLOSE_NORMAL if code == wf.CLOSE_NO_STATUS else code
            self._write_now(wf.close_frame(reply))
        self._end(code)

    def _fail(self, code: int, reason: str) -> None:
        """Close for a protocol violation by the client."""
        logger.info("closing a websocket (%d): %s", code, reason)
        if self.state in (OPEN, CLOSING):
            self._write_now(wf.close_frame(code, reason))
        self._end(code)

    def _end(self, code: int) -> None:
        """Close the TCP connection now and tell the application, with ``code``."""
        self.close_code = code
        self.transport.close()
        self._disconnected()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
        if self._drip_timer is not None:
            self._drip_timer.cancel()
            self._drip_timer = None
        self._disconnected()
        ip, self._counted_ip = self._counted_ip, None
        if ip is not None:
            self.host.release(ip)

    def pause_writing(self) -> None:
        pass  # the send-buffer cap in _flush() bounds what waits

    def resume_writing(self) -> None:
        pass

    def check_alive(self, now: float, interval: float) -> None:
        """Called by the sweep: ping if idle, drop if a ping went unanswered."""
        if self.seen:
            self.seen = False
            self.ping_sent = 0.0
        elif self.state == OPEN:
            if self._lowat > trickle.EVERY_BYTE:
                # bytes of an unfinished frame may be waiting below the low-water mark:
                # read them, so that a slow but live link counts as seen
                self._low_water(trickle.EVERY_BYTE)
            if not self.ping_sent:
                self.ping_sent = now
                self._queue(wf.encode_frame(wf.OP_PING, b""))
            elif now - self.ping_sent >= interval:
                logger.info("dropping a websocket that stopped answering pings")
                self.transport.abort()

    # --- to the application -----------------------------------------------------------

    def _push(self, event: Message) -> None:
        self.events.append(event)
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)
        if not self.paused and len(self.events) > HIGH_WATER and self.state != CLOSED:
            self.paused = True
            self.transport.pause_reading()

    def _disconnected(self) -> None:
        if self.state == CLOSED:
            return
        verb = "WSREJECT" if self.state == CONNECTING else "WSDISCONNECT"
        self.host.log_action(verb, self.scope["path"], self.scope["client"])
        self.state = CLOSED
        self.host.sockets.discard(self)
        self._push({"type": "websocket.disconnect", "code": self.close_code})

    # --- writing ----------------------------------------------------------------------

    def _queue(self, frame: bytes) -> None:
        """Write ``frame`` at the end of this loop iteration, with the others queued in it
        (a burst to one peer becomes one system call)."""
        out = self._out
        if not out:
            self._loop.call_soon(self._flush)
        out.append(frame)

    def _rearm(self) -> None:
        self._wrote = False

    def _flush(self) -> None:
        out = self._out
        if out:
            self._out = []
            self._write(out[0] if len(out) == 1 else b"".join(out))

    def _write(self, data: bytes) -> None:
        """Write ``data`` now, unless closing; drop a socket over the send-buffer cap."""
        transport = self.transport
        if transport.is_closing():
            return
        if transport.get_write_buffer_size() > self._limit:
            # pongs and pings are queued here too, not only the application's frames
            logger.warning("dropping a websocket that does not read (%d bytes waiting)",
                           transport.get_write_buffer_size())
            transport.abort()
            return
        transport.write(data)

    def _write_now(self, data: bytes) -> None:
        """Write ``data`` after whatever is queued, at once (before a close)."""
        self._flush()
        if not self.transport.is_closing():
            self.transport.write(data)

    async def receive(self) -> Message:
        """ASGI receive: the next event for the application."""
        events = self.events
        while not events:
            self.waiter = self._loop.create_future()
            await self.waiter
        event = events.pop(0)
        self.host.more_waiting = bool(events)
        if self.paused and len(events) < LOW_WATER and self.state != CLOSED:
            self.paused = False
            if self._drip_timer is None:
                self.transport.resume_reading()
        return event

    async def send(self, message: Message) -> None:
        """ASGI send: frames, accept and close from the application."""
        kind = message["type"]
        if kind == "websocket.send":
            if self.state != OPEN:
                return  # closing or closed: the application learns via disconnect
            text = message.get("text")
            if text is not None:
                frame = wf.encode_frame(wf.OP_TEXT, text.encode())
            else:
                frame = wf.encode_frame(wf.OP_BINARY, message.get("bytes") or b"")
            if self._out or self.host.more_waiting or self._wrote:
                self._queue(frame)
            else:
                # Written at once; what follows in this loop iteration (a run of frames
                # handed over from another node, several sends for one event) is held
                # and written together at its end, as before.
                self._write(frame)
                self._wrote = True
                self._loop.call_soon(self._rearm)
        elif kind == SHARED_BUCKET:
            self._bucket = message["bucket"]
            # frames read so far were charged (or not limited) already
            self._others_seen = self.reader.other_frames
        elif kind == "websocket.accept":
            self._accept(message)
        elif kind == "websocket.close":
            self._close(int(message.get("code") or 1000), str(message.get("reason") or ""))
        else:
            raise ValueError(f"unexpected ASGI message type {kind!r} on a websocket")

    def _accept(self, message: Message) -> None:
        if self.state != CONNECTING:
            return
        headers = message.get("headers")  # (a comprehension is a call even when empty)
        extra = [(bytes(k), bytes(v)) for k, v in headers] if headers else None
        self._queue(wf.switching_protocols(self.key, message.get("subprotocol"), extra))
        self.state = OPEN
        self.host.log_action("WSCONNECT", self.scope["path"], self.scope["client"])

    def _close(self, code: int, reason: str) -> None:
        if self.state == CONNECTING:
            self._write_now(wf.plain_response(403, "Forbidden"))
            self.close_code = 1006
            self.transport.close()
            self._disconnected()
        elif self.state == OPEN:
            if code not in SENDABLE_CODES and not 3000 <= code <= 4999:
                code = 1000
            self._write_now(wf.close_frame(code, reason))
            self.state = CLOSING
            self.close_code = code
            self._close_timer = self._loop.call_later(CLOSE_TIMEOUT, self.transport.abort)

    def _application_done(self, task: asyncio.Future[None]) -> None:
        """The application returned, failed or was cancelled: close if it did not."""
        self.task = None
        if task.cancelled():
            code = 1001
        else:
            exc = task.exception()
            if exc is None:
                code = 1000
            else:
                logger.error("websocket application failed", exc_info=exc)
                code = 1011
        if self.state in (CONNECTING, OPEN):
            self._close(code, "")
