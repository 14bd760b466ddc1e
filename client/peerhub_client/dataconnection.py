"""``DataConnection``: one RTCDataChannel with a PeerJS serialization on top."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from aiortc import RTCDataChannel

from .chunking import ChunkLimits
from .connection import BaseConnection
from .errors import MessageTooBig, PeerErrorType, SerializationError, UnknownSerialization
from .protocol import MessageType, message
from .serializers import CLOSE, Frame, Serializer, create_serializer, wire_name

if TYPE_CHECKING:
    from .peer import Peer

__all__ = ["DataConnection"]

log = logging.getLogger(__name__)

MAX_BACKLOG = 10_000
FLUSH_CLOSE_GRACE = 5.0
_END = object()


class DataConnection(BaseConnection):
    """A PeerJS data connection; ``await conn`` waits until it is open."""

    type = "data"

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
        self._backlog: deque[Any] = deque()
        try:
            self.serialization = wire_name(serialization)
            self._serializer = create_serializer(serialization, limits=limits, text_json=text_json)
        except UnknownSerialization:
            self.serialization = serialization

    # ------------------------------------------------------------------ public API

    def send(self, data: Any) -> None:
        """Send ``data``; errors ``not-open-yet`` and ``message-too-big`` are emitted, as PeerJS."""
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
        _send_frames(channel, frames)

    def close(self, *, flush: bool = False) -> None:
        """Close; with ``flush`` send PeerJS's in-band close request and let the remote close."""
        if flush and self.open and self.data_channel and self._serializer:
            frames = self._serializer.close_frames()
            if frames:
                _send_frames(self.data_channel, frames)
                loop = asyncio.get_running_loop()
                loop.call_later(FLUSH_CLOSE_GRACE, self.close)
                return
        super().close()

    @property
    def buffered_amount(self) -> int:
        return self.data_channel.bufferedAmount if self.data_channel else 0

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        put = queue.put_nowait

        def end() -> None:
            put(_END)

        self.on("data", put)
        self.on("close", end)
        if self.closed:
            end()
        try:
            while (item := await queue.get()) is not _END:
                yield item
        finally:
            self.off("data", put)
            self.off("close", end)

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
        elif len(self._backlog) < MAX_BACKLOG:
            self._backlog.append(value)
        else:
            log.warning("no data listener on %s; dropping a message", self.connection_id)

    def _listener_added(self, event: str) -> None:
        if event == "data":
            while self._backlog and self.listener_count("data"):
                self.emit("data", self._backlog.popleft())

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


def _send_frames(channel: RTCDataChannel, frames: list[Frame]) -> None:
    for frame in frames:
        channel.send(frame)
