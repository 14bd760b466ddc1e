"""The PeerJS wire protocol as pure data and functions, with PeerJS's exact strings.

Nothing here touches sockets, Django or the event loop: it parses client frames, builds
server frames and answers small protocol questions, so server and client tests share it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple
from urllib.parse import parse_qs

import orjson


class MessageType(StrEnum):
    """Message ``type`` values, spelled as PeerJS spells them."""

    OPEN = "OPEN"
    LEAVE = "LEAVE"
    CANDIDATE = "CANDIDATE"
    OFFER = "OFFER"
    ANSWER = "ANSWER"
    EXPIRE = "EXPIRE"
    HEARTBEAT = "HEARTBEAT"
    ID_TAKEN = "ID-TAKEN"
    ERROR = "ERROR"
    INVALID_KEY = "INVALID-KEY"


class Errors:
    """Error texts sent in ``ERROR`` payloads (the first five are peerjs-server's own)."""

    INVALID_KEY = "Invalid key provided"
    INVALID_TOKEN = "Invalid token provided"
    INVALID_WS_PARAMETERS = "No id, token, or key supplied to websocket server"
    CONNECTION_LIMIT_EXCEED = "Server has reached its concurrent user limit"
    ID_TAKEN = "ID is taken"
    # peerhub's own, in the same style.
    INVALID_ID = "Invalid id provided"
    ID_NOT_HELD = "ID is no longer held by this connection"
    # peerhub's own, for input peerjs-server silently drops or crashes on.
    NOT_JSON = "Invalid message: not JSON"
    NOT_OBJECT = "Invalid message: not a JSON object"
    NO_TYPE = "Invalid message: no type"
    BAD_DST = "Invalid message: dst must be a string"
    RATE_LIMIT = "Rate limit exceeded"
    ORIGIN_NOT_ALLOWED = "Origin not allowed for this key"
    TOO_BIG = "Message too big"
    KEY_DEACTIVATED = "API key was deactivated"
    IP_RATE = "Too many connections from your address; slow down"
    IP_SOCKETS = "Too many open connections from your address"
    SENDER_QUEUE_FULL = "Too many messages waiting for offline peers"
    CLUSTER_UNAVAILABLE = "Server is temporarily unavailable"
    KICKED = "Kicked by the operator"
    BANNED = "Your address is banned"


#: Types a client may send that the server relays to ``dst``.
RELAYED_TYPES = frozenset(
    {MessageType.OFFER, MessageType.ANSWER, MessageType.CANDIDATE, MessageType.LEAVE,
     MessageType.EXPIRE}
)
#: Relayed types that are queued when ``dst`` is offline (LEAVE and EXPIRE never are).
QUEUED_TYPES = frozenset({MessageType.OFFER, MessageType.ANSWER, MessageType.CANDIDATE})

#: The PeerJS client's id rule (0.3.x and 1.5.x alike).
ID_PATTERN = re.compile(r"^[A-Za-z0-9]+(?:[ _-][A-Za-z0-9]+)*$")
#: What no id may contain and text from clients loses before it is stored: control
#: characters (C0, DEL, C1; NUL is what PostgreSQL cannot store at all) and lone
#: surrogates (they have no UTF-8 form, so neither Redis nor a database can hold them).
UNSTORABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def has_unstorable(text: str) -> bool:
    """Tell whether ``text`` holds an :data:`UNSTORABLE` character.

    Printable ASCII (every honest id, key and User-Agent) is answered by two C string
    methods, without the regular expression: in ASCII the pattern's characters are
    exactly the ones ``str.isprintable`` rejects (``\\x00``-``\\x1f``, ``\\x7f``).
    """
    if text.isascii() and text.isprintable():
        return False
    return UNSTORABLE.search(text) is not None


BANNER = {
    "name": "PeerJS Server",
    "description": "A server side element to broker connections between PeerJS clients.",
    "website": "https://peerjs.com/",
}

# 0.3.x XHR stream: 2048 zeros then a newline, ignored by the client as line 0.
STREAM_PADDING = "0" * 2048 + "\n"


class ProtocolError(ValueError):
    """A client frame that breaks the protocol; ``str(exc)`` is the ERROR text to send."""


class ClientMessage(NamedTuple):
    """One parsed client frame: its type, its destination and its untouched payload.

    A named tuple, not a frozen dataclass: one is made per relayed message, and a frozen
    dataclass's ``__init__`` is four ``object.__setattr__`` calls (34 bytecodes against
    7 here).
    """

    type: str
    dst: str | None
    payload: Any
    has_payload: bool


def is_valid_id(peer_id: str) -> bool:
    """Tell whether ``peer_id`` passes the PeerJS client's id rule."""
    return bool(ID_PATTERN.match(peer_id))


def is_acceptable_id(peer_id: str) -> bool:
    """Tell whether peerhub registers ``peer_id``: not empty, no :data:`UNSTORABLE`
    character.

    This is peerhub's server-side rule, wider than the PeerJS client's
    (:func:`is_valid_id`), which peerjs-server does not enforce either. An id that fails
    it is refused at registration (``ERROR`` "Invalid id provided", close 1008), so it
    never reaches the directory, Redis, the database or a log line.
    """
    return bool(peer_id) and not has_unstorable(peer_id)


def storable_text(text: str, limit: int) -> str:
    """``text`` without :data:`UNSTORABLE` characters (each becomes U+FFFD), cut to
    ``limit`` characters: how client-supplied text (User-Agent, version) is stored."""
    if not (text.isascii() and text.isprintable()) and UNSTORABLE.search(text):
        text = UNSTORABLE.sub("\ufffd", text)  # (has_unstorable, inline: three per peer)
    return text[:limit]


def parse_client_frame(data: str | bytes) -> ClientMessage:
    """Parse a text or binary frame into a :class:`ClientMessage`.

    Raises :class:`ProtocolError` whose text says exactly what was wrong.
    """
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(Errors.NOT_JSON) from exc
    if not isinstance(obj, dict):
        raise ProtocolError(Errors.NOT_OBJECT)
    msg_type = obj.get("type")
    if not isinstance(msg_type, str) or msg_type == "":
        raise ProtocolError(Errors.NO_TYPE)
    dst = obj.get("dst")
    if dst is not None and not isinstance(dst, str):
        raise ProtocolError(Errors.BAD_DST)
    return ClientMessage(msg_type, dst or None, obj.get("payload"), "payload" in obj)


def relay_frame(msg_type: str, src: str, dst: str | None, payload: Any = None,
                has_payload: bool = False) -> str:
    """Build a relayed frame with keys exactly ``type, src, dst, payload``.

    ``payload`` is left out when the sender gave none, as peerjs-server does.
    """
    frame: dict[str, Any] = {"type": msg_type, "src": src, "dst": dst}
    if has_payload:
        frame["payload"] = payload
    return orjson.dumps(frame).decode()


def relay_message(msg: ClientMessage, src: str) -> str:
    """Re-emit a parsed client message with the server's ``src`` stamp."""
    return relay_frame(msg.type, src, msg.dst, msg.payload, msg.has_payload)


def expire_frame(offline_id: str, sender_id: str) -> str:
    """The EXPIRE a sender gets for a message to an offline peer (src and dst swapped)."""
    return orjson.dumps({"type": "EXPIRE", "src": offline_id, "dst": sender_id}).decode()


def leave_frame(left_id: str, dst_id: str) -> str:
    """The LEAVE a peer gets when ``left_id`` went away."""
    return orjson.dumps({"type": "LEAVE", "src": left_id, "dst": dst_id}).decode()


def error_frame(text: str) -> str:
    """An ``ERROR`` frame carrying ``text`` as ``payload.msg``."""
    return orjson.dumps({"type": "ERROR", "payload": {"msg": text}}).decode()


OPEN_FRAME = orjson.dumps({"type": "OPEN"}).decode()
#: The HEARTBEAT exactly as PeerJS sends it (``JSON.stringify({type: "HEARTBEAT"})``).
HEARTBEAT_FRAME = '{"type":"HEARTBEAT"}'
ID_TAKEN_FRAME = orjson.dumps({"type": "ID-TAKEN", "payload": {"msg": Errors.ID_TAKEN}}).decode()
INVALID_KEY_FRAME = orjson.dumps(
    {"type": "INVALID-KEY", "payload": {"msg": Errors.INVALID_KEY}}
).decode()


@dataclass(frozen=True, slots=True)
class Handshake:
    """The websocket query parameters a PeerJS client sends."""

    key: str
    id: str
    token: str
    version: str | None


def parse_handshake(query_string: bytes | str) -> Handshake | None:
    """Read ``key``, ``id``, ``token`` (and ``version``); None if one is missing or empty."""
    if isinstance(query_string, bytes):
        query_string = query_string.decode("latin-1")
    params = first_values(query_string)
    key, peer_id, token = params.get("key", ""), params.get("id", ""), params.get("token", "")
    if not (key and peer_id and token):
        return None
    return Handshake(key, peer_id, token, params.get("version") or None)


def first_values(query: str) -> dict[str, str]:
    """The first value of each parameter in ``query``, exactly as
    ``parse_qs(query, keep_blank_values=True)`` reads them.

    A query without ``%`` or ``+`` (what PeerJS clients send) has nothing to decode, so
    it is split with C string methods: ``parse_qs`` costs about 450 bytecodes per
    websocket (the largest single part of a connection's Python work).
    """
    if "%" in query or "+" in query:
        return {name: values[0]
                for name, values in parse_qs(query, keep_blank_values=True).items()}
    found: dict[str, str] = {}
    for field in query.split("&"):
        if field:
            name, _, value = field.partition("=")
            if name not in found:
                found[name] = value
    return found
