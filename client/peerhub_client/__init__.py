"""A Python PeerJS client on aiortc: PeerJS 1.5.x API, events and wire formats.

``Peer``, ``DataConnection`` and ``MediaConnection`` mirror PeerJS; errors are
``PeerError`` objects whose ``type`` is a PeerJS error type string.
"""

from .chunking import ChunkLimits
from .dataconnection import DataConnection
from .errors import (
    MessageTooBig,
    PeerError,
    PeerErrorType,
    SerializationError,
    UnknownSerialization,
)
from .media import MediaStream
from .mediaconnection import MediaConnection
from .peer import Peer, PeerStateError
from .reconnect import ReconnectPolicy

__all__ = [
    "ChunkLimits",
    "DataConnection",
    "MediaConnection",
    "MediaStream",
    "MessageTooBig",
    "Peer",
    "PeerError",
    "PeerErrorType",
    "PeerStateError",
    "ReconnectPolicy",
    "SerializationError",
    "UnknownSerialization",
]
