"""Error types of the client, spelled as PeerJS spells them (protocol §3.9)."""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "MessageTooBig",
    "PeerError",
    "PeerErrorType",
    "SerializationError",
    "UnknownSerialization",
]


class PeerErrorType(StrEnum):
    """The ``type`` strings PeerJS puts on its ``PeerError`` objects."""

    BROWSER_INCOMPATIBLE = "browser-incompatible"
    DISCONNECTED = "disconnected"
    INVALID_ID = "invalid-id"
    INVALID_KEY = "invalid-key"
    NETWORK = "network"
    PEER_UNAVAILABLE = "peer-unavailable"
    SSL_UNAVAILABLE = "ssl-unavailable"
    SERVER_ERROR = "server-error"
    SOCKET_ERROR = "socket-error"
    SOCKET_CLOSED = "socket-closed"
    UNAVAILABLE_ID = "unavailable-id"
    WEBRTC = "webrtc"
    NEGOTIATION_FAILED = "negotiation-failed"
    CONNECTION_CLOSED = "connection-closed"
    NOT_OPEN_YET = "not-open-yet"
    MESSAGE_TOO_BIG = "message-too-big"
    # not in PeerJS: a remote peer sent data this side cannot decode
    BAD_DATA = "bad-data"


class PeerError(Exception):
    """What ``error`` events carry and what awaiting a failed peer/connection raises."""

    def __init__(self, type: PeerErrorType | str, message: str) -> None:
        super().__init__(message)
        self.type = PeerErrorType(type)
        self.message = message

    def __repr__(self) -> str:
        return f"PeerError({self.type.value!r}, {self.message!r})"


class SerializationError(ValueError):
    """Data could not be encoded for, or decoded from, a data connection."""


class MessageTooBig(SerializationError):
    """A message is larger than its serialization allows (``json``: 16,300 bytes)."""


class UnknownSerialization(SerializationError):
    """The serialization name is not one this client implements."""
