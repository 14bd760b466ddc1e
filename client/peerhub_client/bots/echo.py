"""The echo bot: every message comes back unchanged, every call gets its own media back."""

from __future__ import annotations

import logging

from aiortc import MediaStreamTrack
from aiortc.contrib.media import MediaRelay

from ..dataconnection import DataConnection
from ..media import MediaStream
from ..mediaconnection import MediaConnection
from ..peer import Peer

__all__ = ["EchoBot"]

log = logging.getLogger(__name__)


class EchoBot:
    """Attach to a ``Peer``: echoes data in any serialization and answers calls with a relay."""

    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self.relay = MediaRelay()
        peer.on("connection", self.on_connection)
        peer.on("call", self.on_call)

    def on_connection(self, conn: DataConnection) -> None:
        log.info(
            "data connection %s from %s (%s)", conn.connection_id, conn.peer, conn.serialization
        )
        conn.on("data", conn.send)
        conn.on("error", lambda err: log.info("connection %s: %s", conn.connection_id, err))

    def on_call(self, call: MediaConnection) -> None:
        log.info("call %s from %s", call.connection_id, call.peer)
        call.answer(self.mirror)

    def mirror(self, stream: MediaStream) -> list[MediaStreamTrack]:
        """The caller's own tracks, relayed back (live: stale frames are dropped)."""
        return [self.relay.subscribe(track, buffered=False) for track in stream.get_tracks()]
