"""``MediaConnection``: a PeerJS media call (tracks plus a hang-up data channel)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from aiortc import MediaStreamTrack, RTCDataChannel

from .connection import BaseConnection
from .media import AnswerSource, MediaStream, local_tracks
from .protocol import MessageType, message

if TYPE_CHECKING:
    from .peer import Peer

__all__ = ["MediaConnection"]

log = logging.getLogger(__name__)


class MediaConnection(BaseConnection):
    """A media call. The callee gets it in a ``call`` event and must ``answer()`` it."""

    type = "media"

    def __init__(
        self,
        peer: str,
        provider: Peer,
        connection_id: str,
        *,
        metadata: Any = None,
        local_stream: MediaStream | None = None,
        offer_sdp: Any = None,
    ) -> None:
        super().__init__(peer, provider, connection_id, metadata)
        self.local_stream = local_stream
        self.remote_stream: MediaStream | None = None
        self._incoming = MediaStream()
        self._offer_sdp = offer_sdp
        self._answered = False
        self.data_channel: RTCDataChannel | None = None

    # ------------------------------------------------------------------ caller

    def _start_originator(self) -> None:
        self._run(self._offer, "offer")

    async def _offer(self) -> None:
        pc = self._new_peer_connection()
        pc.on("track", self._on_track)
        for track in self.local_stream.get_tracks() if self.local_stream else []:
            pc.addTrack(track)
        self._attach_channel(pc.createDataChannel(self.connection_id, ordered=False))
        await self._set_local(pc.createOffer)
        payload: dict[str, Any] = {
            "sdp": self._local_sdp(),
            "type": "media",
            "connectionId": self.connection_id,
        }
        if self.metadata is not None:
            payload["metadata"] = self.metadata
        self.provider._send(message(MessageType.OFFER, self.peer, payload))

    async def _on_answer(self, sdp: Any) -> None:
        await self._set_remote(sdp)
        self._set_open()
        self._emit_stream()

    # ------------------------------------------------------------------ callee

    def answer(self, stream: AnswerSource = None) -> None:
        """Answer with ``stream``: tracks, a media source, or a function of the caller's stream."""
        if self._answered or self.closed:
            log.warning("call %s already answered or closed", self.connection_id)
            return
        self._answered = True
        self._run(lambda: self._answer(stream), "answer")

    async def _answer(self, stream: AnswerSource) -> None:
        pc = self._new_peer_connection()
        pc.on("track", self._on_track)
        pc.on("datachannel", self._attach_channel)
        await self._set_remote(self._offer_sdp)
        source = stream(self._incoming) if callable(stream) else stream
        self.local_stream = MediaStream(local_tracks(source))
        for track in self.local_stream.get_tracks():
            pc.addTrack(track)
        await self._set_local(pc.createAnswer)
        payload = {"sdp": self._local_sdp(), "type": "media", "connectionId": self.connection_id}
        self.provider._send(message(MessageType.ANSWER, self.peer, payload))
        self._set_open()
        self._emit_stream()

    # ------------------------------------------------------------------ shared

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._incoming.add_track(track)

    def _emit_stream(self) -> None:
        if self.remote_stream is None and self._incoming.tracks:
            self.remote_stream = self._incoming
            self.emit("stream", self._incoming)

    def _attach_channel(self, channel: RTCDataChannel) -> None:
        # the channel carries nothing; its closing is the remote hanging up
        self.data_channel = channel
        channel.on("close", self.close)
