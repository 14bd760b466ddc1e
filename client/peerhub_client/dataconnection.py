"""``DataConnection``: one RTCDataChannel with a PeerJS serialization on top.

Receiving: every decoded message goes to the ``data`` handlers if there are any,
otherwise into the connection's one queue, which ``await conn.recv()`` and
``async for data in conn`` read (in order, however they are mixed). A ``data`` handler
attached later first gets what waits in the queue.

Sending: ``send()`` encodes at once (errors are ``error`` events, never exceptions)
and queues the frames; they go into the RTCDataChannel while its ``bufferedAmount``
is below the high-water mark (PeerJS's 8 MiB), the rest as it drains.
``await conn.drain()`` waits until everything queued is in the channel and the channel
holds at most the mark: the backpressure point for large transfers.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from aiortc import RTCDataChannel
from aiortc.exceptions import InvalidStateError

from .chunking import ChunkLimits
from .connection import BaseConnection
from .errors import (
    MessageTooBig,
    PeerError,
    PeerErrorType,
    SerializationError,
    UnknownSerialization,
)
from .protocol import MessageType, message
from .sctptuning import tune as tune_sctp
from .serializers import CLOSE, Frame, Serializer, create_serializer, wire_name

if TYPE_CHECKING:
    from .peer import Peer

__all__ = ["DataConnection"]

log = logging.getLogger(__name__)

MAX_BACKLOG = 10_000
FLUSH_CLOSE_GRACE = 5.0
HIGH_WATER_MARK = 8 * 1024 * 1024  # PeerJS's MAX_BUFFERED_AMOUNT
REMOTE_MAX_MESSAGE_SIZE = 262_144  # what aiortc and Chromium both advertise
_END = object()


class DataConnection(BaseConnection):
    """A PeerJS data connection; ``await conn`` waits until it is open."""

    type = "data"
    high_water_mark = HIGH_WATER_MARK

    def __init__(
        self,
        peer: str,
        provider: Peer,
        connection_id: str,
        *,
        label: str | None = None,
        metadata: Any = None,
        serialization: str = "binary",
        reliable: bool = False,
        limits: ChunkLimits | None = None,
        text_json: bool = False,
    ) -> None:
        super().__init__(peer, provider, connection_id, metadata)
        self.label = label or connection_id
        self.reliable = reliable
        self.data_channel: RTCDataChannel | None = None
        self._serializer: Serializer | None = None
        self._limits = limits or ChunkLimits()
        self._expiry: asyncio.TimerHandle | None = None
        self._inbox: asyncio.Queue[Any] = asyncio.Queue()
        self._outbox: deque[Frame] = deque()
        self._outbox_bytes = 0
        self._drain_waiters: list[asyncio.Future[None]] = []
        try:
            self.serialization = wire_name(serialization)
            self._serializer = create_serializer(serialization, limits=limits, text_json=text_json)
        except UnknownSerialization:
            self.serialization = serialization

    # ------------------------------------------------------------------ public API

    def send(self, data: Any) -> None:
        """Send ``data``. It never raises: a failure is an ``error`` event on the connection.

        ``not-open-yet`` before ``open`` (as PeerJS), ``message-too-big`` for a message
        its serialization cannot carry (``json`` over 16,300 bytes, a ``raw`` frame
        over the channel's 256 KiB), ``bad-data`` for a value the serialization cannot
        encode (a ``set`` in ``binary``, a ``dict`` on ``raw`` …). Await ``drain()``
        to wait until the channel has room again.
        """
        channel = self.data_channel
        if not self.open or channel is None or self._serializer is None:
            self._error(
                PeerErrorType.NOT_OPEN_YET,
                "Connection is not open. You should listen for the `open` event "
                "before sending messages.",
                fatal=False,
            )
            return
        try:
            frames = self._serializer.encode(data)
        except MessageTooBig as exc:
            self._error(PeerErrorType.MESSAGE_TOO_BIG, str(exc), fatal=False)
            return
        except SerializationError as exc:
            self._error(PeerErrorType.BAD_DATA, f"Cannot send this value: {exc}", fatal=False)
            return
        largest = max((_frame_size(f) for f in frames), default=0)
        if largest > REMOTE_MAX_MESSAGE_SIZE:
            self._error(
                PeerErrorType.MESSAGE_TOO_BIG,
                f"Message too big for {self.serialization} channel: {largest} bytes in one "
                f"frame, the channel carries at most {REMOTE_MAX_MESSAGE_SIZE}",
                fatal=False,
            )
            return
        self._queue_frames(frames)

    async def drain(self) -> None:
        """Wait until every queued frame is in the channel and at most
        ``high_water_mark`` bytes are buffered there. Raises ``PeerError``
        (``connection-closed``) if the connection is closed or closes first."""
        while True:
            if self._closed:
                raise PeerError(
                    PeerErrorType.CONNECTION_CLOSED, f"Connection to {self.peer} closed."
                )
            if not self._outbox and self._channel_buffered() <= self.high_water_mark:
                return
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._drain_waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._drain_waiters:
                    self._drain_waiters.remove(waiter)

    async def recv(self) -> Any:
        """The next message (in arrival order); raises ``PeerError`` (``connection-closed``)
        once the connection is closed and every message before the close was read."""
        item = await self._inbox.get()
        if item is _END:
            self._inbox.put_nowait(_END)  # every later or concurrent reader ends too
            raise PeerError(PeerErrorType.CONNECTION_CLOSED, f"Connection to {self.peer} closed.")
        return item

    def close(self, *, flush: bool = False) -> None:
        """Close; with ``flush`` send PeerJS's in-band close request and let the remote close."""
        if flush and self.open and self.data_channel and self._serializer:
            frames = self._serializer.close_frames()
            if frames:
                self._queue_frames(frames)
                loop = asyncio.get_running_loop()
                loop.call_later(FLUSH_CLOSE_GRACE, self.close)
                return
        super().close()

    @property
    def buffered_amount(self) -> int:
        """Bytes sent but not yet on the wire: queued here plus buffered in the channel."""
        return self._outbox_bytes + self._channel_buffered()

    def _channel_buffered(self) -> int:
        return self.data_channel.bufferedAmount if self.data_channel else 0

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.recv()
        except PeerError:
            if self._closed:
                raise StopAsyncIteration from None
            raise

    # ------------------------------------------------------------------ sending

    def _queue_frames(self, frames: list[Frame]) -> None:
        self._outbox.extend(frames)
        self._outbox_bytes += sum(_frame_size(f) for f in frames)
        self._pump()

    def _pump(self) -> None:
        """Move queued frames into the channel while it holds less than the mark."""
        channel = self.data_channel
        if channel is None or channel.readyState != "open":
            return
        outbox = self._outbox
        while outbox and channel.bufferedAmount < self.high_water_mark:
            frame = outbox.popleft()
            self._outbox_bytes -= _frame_size(frame)
            try:
                channel.send(frame)
            except ValueError as exc:  # larger than the remote side accepts
                self._error(PeerErrorType.MESSAGE_TOO_BIG, str(exc), fatal=False)
            except InvalidStateError:  # the channel closed under us: nothing more can go
                self._error(PeerErrorType.CONNECTION_CLOSED,
                            f"Connection to {self.peer} closed.", fatal=False)  # fmt: skip
                outbox.clear()
                self._outbox_bytes = 0
                return
        if not outbox and channel.bufferedAmount <= self.high_water_mark:
            self._wake_drainers()

    def _on_buffered_low(self) -> None:
        self._pump()

    def _wake_drainers(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # ------------------------------------------------------------------ negotiation

    def _start_originator(self) -> None:
        self._run(self._offer, "offer")

    async def _offer(self) -> None:
        pc = self._new_peer_connection()
        self._attach_channel(pc.createDataChannel(self.label, ordered=self.reliable))
        await self._set_local(pc.createOffer)
        payload = {
            "sdp": self._local_sdp(),
            "type": "data",
            "connectionId": self.connection_id,
            "label": self.label,
            "reliable": self.reliable,
            "serialization": self.serialization,
        }
        if self.metadata is not None:
            payload["metadata"] = self.metadata
        self.provider._send(message(MessageType.OFFER, self.peer, payload))

    def _start_answerer(self, offer_sdp: Any) -> None:
        if self._serializer is None:
            asyncio.get_running_loop().call_soon(self._refuse_serialization)
            return
        self._run(lambda: self._answer(offer_sdp), "answer")

    def _refuse_serialization(self) -> None:
        self._error(
            PeerErrorType.BAD_DATA,
            f"Unknown serialization {self.serialization!r} requested by {self.peer}",
        )
        self.close()

    async def _answer(self, offer_sdp: Any) -> None:
        pc = self._new_peer_connection()
        pc.on("datachannel", self._attach_channel)
        await self._set_remote(offer_sdp)
        await self._set_local(pc.createAnswer)
        payload = {"sdp": self._local_sdp(), "type": "data", "connectionId": self.connection_id}
        self.provider._send(message(MessageType.ANSWER, self.peer, payload))

    # ------------------------------------------------------------------ channel events

    def _attach_channel(self, channel: RTCDataChannel) -> None:
        self.data_channel = channel
        tune_sctp(channel.transport)
        # told when the channel drains below half the mark, so the pump refills it
        channel.bufferedAmountLowThreshold = self.high_water_mark // 2
        channel.on("bufferedamountlow", self._on_buffered_low)
        channel.on("message", self._on_frame)
        channel.on("open", self._set_open)
        channel.on("close", self.close)
        if channel.readyState == "open":
            asyncio.get_running_loop().call_soon(self._set_open)

    def _on_frame(self, frame: Frame) -> None:
        if self._closed or self._serializer is None:
            return
        try:
            values = self._serializer.decode(frame)
        except SerializationError as exc:
            self._bad_data(str(exc))
            return
        finally:
            self._schedule_expiry()
        for value in values:
            if value is CLOSE:
                self.close()
                return
            self._deliver(value)

    def _bad_data(self, detail: str) -> None:
        self._error(
            PeerErrorType.BAD_DATA,
            f"Bad {self.serialization} data from {self.peer}: {detail}",
            fatal=False,
        )

    def _deliver(self, value: Any) -> None:
        if self.listener_count("data"):
            self.emit("data", value)
        elif self._inbox.qsize() < MAX_BACKLOG:
            self._inbox.put_nowait(value)
        else:
            self._bad_data(f"{MAX_BACKLOG} messages wait unread; dropping one")

    def _listener_added(self, event: str) -> None:
        if event != "data":
            return
        inbox = self._inbox
        while not inbox.empty() and self.listener_count("data"):
            item = inbox.get_nowait()
            if item is _END:
                inbox.put_nowait(_END)
                return
            self.emit("data", item)

    # ------------------------------------------------------------------ chunk expiry

    def _schedule_expiry(self) -> None:
        if self._expiry is None and self._serializer and self._serializer.pending():
            loop = asyncio.get_running_loop()
            self._expiry = loop.call_later(self._limits.timeout, self._expire_chunks)

    def _expire_chunks(self) -> None:
        self._expiry = None
        if self._serializer is None or self._closed:
            return
        for text in self._serializer.expire():
            self._bad_data(text)
        self._schedule_expiry()

    def _before_close(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
        if self._serializer is not None:
            for text in self._serializer.incomplete():
                self._bad_data(text)
        self._outbox.clear()
        self._outbox_bytes = 0
        self._wake_drainers()  # they see the close and raise
        self._inbox.put_nowait(_END)


def _frame_size(frame: Frame) -> int:
    return len(frame) if isinstance(frame, bytes) else len(frame.encode())
