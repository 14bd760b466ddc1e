"""``Peer``: the PeerJS 1.5.x ``Peer`` for asyncio, on aiortc."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiortc import RTCConfiguration

from .api import IdRequestFailed, fetch_id
from .chunking import ChunkLimits
from .connection import BaseConnection
from .dataconnection import DataConnection
from .debuglog import enable_debug_logging
from .errors import PeerError, PeerErrorType, UnknownSerialization
from .events import EventEmitter, TaskSet
from .media import MediaSource, MediaStream, local_tracks
from .mediaconnection import MediaConnection
from .protocol import (
    MessageType,
    is_valid_id,
    new_connection_id,
    new_token,
    normalize_path,
    ws_url,
)
from .reconnect import ReconnectPolicy
from .serializers import SERIALIZATIONS
from .signalling_socket import SignallingSocket, SocketError
from .udpbuffer import DEFAULT_UDP_RECEIVE_BUFFER

__all__ = ["Peer", "PeerOptions", "PeerStateError"]

log = logging.getLogger(__name__)

MAX_LOST_IDS = 256
TAKEOVER_GRACE = 2.0
MAX_LOST_PER_ID = 64
ID_HINT = (
    " If you passed in a `path` to your self-hosted PeerServer, you'll also need to "
    "pass in that same path when creating a new Peer."
)


class PeerStateError(RuntimeError):
    """An operation that the peer's current state does not allow (e.g. reconnect)."""


@dataclass
class PeerOptions:
    host: str
    port: int
    key: str = "peerjs"
    path: str = "/"
    secure: bool = False
    config: dict[str, Any] | RTCConfiguration | None = None
    token: str = field(default_factory=new_token)
    debug: int = 0
    ping_interval: float = 5.0
    limits: ChunkLimits = field(default_factory=ChunkLimits)
    reconnect: ReconnectPolicy | None = None
    udp_receive_buffer: int = DEFAULT_UDP_RECEIVE_BUFFER


class Peer(EventEmitter):
    """A peer on a PeerServer. Events: open, connection, call, close, disconnected, error.

    ``connection`` and ``call`` events that fire before any handler is attached are
    held for the first one; ``open`` is sticky (see ``events.py``), so handlers may be
    attached after ``await peer.ready()`` without missing anything.
    """

    held_events = frozenset({"connection", "call"})

    def __init__(
        self,
        id: str | None = None,
        *,
        host: str,
        port: int,
        key: str = "peerjs",
        path: str = "/",
        secure: bool = False,
        config: dict[str, Any] | RTCConfiguration | None = None,
        token: str | None = None,
        debug: int = 0,
        ping_interval: float = 5.0,
        limits: ChunkLimits | None = None,
        reconnect: bool | ReconnectPolicy = False,
        udp_receive_buffer: int = DEFAULT_UDP_RECEIVE_BUFFER,
    ) -> None:
        super().__init__()
        policy = ReconnectPolicy() if reconnect is True else reconnect or None
        self.options = PeerOptions(
            host, port, key, normalize_path(path), secure, config,
            token or new_token(), debug, ping_interval, limits or ChunkLimits(),
            policy, udp_receive_buffer,
        )  # fmt: skip
        if debug:
            enable_debug_logging(debug)
        self.id: str | None = id or None
        self.open = False
        self.disconnected = False
        self.destroyed = False
        self._requested_id = id
        self._last_server_id: str | None = None
        self._connections: dict[str, list[BaseConnection]] = {}
        self._lost: dict[str, list[dict[str, Any]]] = {}
        self._socket: SignallingSocket | None = None
        self._socket_closing: asyncio.Task[Any] | None = None
        self._takeover: asyncio.Task[Any] | None = None
        self._outbox: list[dict[str, Any]] = []
        self._tasks = TaskSet("peer")
        self._ready: asyncio.Future[Peer] | None = None
        self._started = False
        self._fatal: PeerError | None = None
        self._pacing = policy or ReconnectPolicy()
        self._failures = 0  # losses and failed attempts since the last OPEN
        self._pending_reconnect: asyncio.Task[Any] | None = None
        self._start_if_running()

    # ------------------------------------------------------------------ lifecycle

    def _start_if_running(self) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # started by ready() / async with
        self._start()

    def _start(self) -> None:
        if self._started:
            return
        self._started = True
        self._spawn(self._initialize(), "initialize")

    async def _initialize(self) -> None:
        requested = self._requested_id
        if requested and not is_valid_id(requested):
            self._abort(PeerErrorType.INVALID_ID, f'ID "{requested}" is invalid')
            return
        if not requested:
            try:
                requested = await self._fetch_id()
            except IdRequestFailed as exc:
                log.debug("id request failed: %s", exc)
                hint = ID_HINT if self.options.path == "/" else ""
                self._abort(
                    PeerErrorType.SERVER_ERROR, "Could not get an ID from the server." + hint
                )
                return
        self.id = requested
        await self._connect_socket(requested)

    async def _fetch_id(self) -> str:
        o = self.options
        return await fetch_id(o.host, o.port, o.path, o.secure, o.key)

    async def _connect_socket(self, peer_id: str) -> None:
        await self._previous_socket_closed()
        o = self.options
        socket = SignallingSocket(
            self._handle_message, self._socket_lost, ping_interval=o.ping_interval
        )
        self._socket = socket
        for msg in self._outbox:
            socket.send(msg)
        self._outbox.clear()
        url = ws_url(o.host, o.port, o.path, o.secure, key=o.key, id=peer_id, token=o.token)
        try:
            await socket.connect(url)
        except SocketError as exc:
            if self._socket is socket:
                self._abort(PeerErrorType.SOCKET_ERROR, str(exc))
            return
        if self._last_server_id is not None:
            self._takeover = self._spawn(self._takeover_fallback(socket), "takeover")

    async def _previous_socket_closed(self) -> None:
        """Let the old socket finish closing, so the server forgets it before we return."""
        closing, self._socket_closing = self._socket_closing, None
        if closing is not None and not closing.done():
            await asyncio.wait([closing], timeout=TAKEOVER_GRACE)

    async def _takeover_fallback(self, socket: SignallingSocket) -> None:
        """peerjs-server sends no OPEN when the same id+token takes over a live registration."""
        await asyncio.sleep(TAKEOVER_GRACE)
        if self._socket is socket and not socket.closed and not self.open and not self.disconnected:
            log.info("no OPEN after reconnecting as %s: the server kept our registration", self.id)
            self._on_open({})

    def _socket_lost(self, reason: str) -> None:
        log.debug("server socket lost: %s", reason)
        if self.disconnected or self.destroyed:
            return
        self._emit_error(PeerErrorType.NETWORK, "Lost connection to server.")
        self._lost_server()

    def _lost_server(self) -> None:
        """Disconnected by a failure (not by ``disconnect()``): count it, maybe retry."""
        self._failures += 1
        self._disconnect()
        policy = self.options.reconnect
        if policy is None or self.destroyed or not self.disconnected:
            return  # no automatic reconnection, or a ``disconnected`` handler reconnected
        if policy.gives_up(self._failures):
            log.warning("giving up reconnecting as %s after %d attempts",
                        self.id, self._failures - 1)  # fmt: skip
            return
        self.reconnect()

    async def ready(self) -> Peer:
        """Start if needed and wait until the server has sent OPEN; raises ``PeerError``."""
        if self.destroyed:
            raise self._fatal or PeerError(PeerErrorType.DISCONNECTED, "Peer is destroyed.")
        if self.disconnected:
            raise PeerError(PeerErrorType.DISCONNECTED, "Peer is disconnected; reconnect() first.")
        future = self._ready_future()
        self._start()
        if self.open:
            return self
        return await asyncio.shield(future)

    def _ready_future(self) -> asyncio.Future[Peer]:
        if self._ready is None or self._ready.done():
            self._ready = asyncio.get_running_loop().create_future()
            self._ready.add_done_callback(_consume)
        return self._ready

    async def __aenter__(self) -> Peer:
        return await self.ready()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.destroy()
        await self.wait_closed()

    async def wait_closed(self) -> None:
        """Wait until the peer is destroyed and its background work has finished.

        A bot can ``await peer.wait_closed()`` to run until ``destroy()`` (for example
        from a signal handler).
        """
        if not self.destroyed:
            closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

            def settle() -> None:
                if not closed.done():
                    closed.set_result(None)

            self.once("close", settle)
            await closed
        while len(self._tasks):
            pending = [t for t in self._tasks.tasks() if t is not asyncio.current_task()]
            if not pending:
                return
            await asyncio.wait(pending)

    def disconnect(self) -> None:
        """Close the server socket, keep connections; ``reconnect()`` can follow."""
        self._disconnect()

    def _disconnect(self) -> None:
        if self.disconnected:
            return
        self.disconnected = True
        self.open = False
        self._clear_sticky("open")
        self._cancel_pending_reconnect()
        self._close_socket()
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(PeerError(PeerErrorType.DISCONNECTED, "Peer disconnected."))
        if self.id is not None:
            self._last_server_id = self._last_server_id or self.id
        self.emit("disconnected", self.id)

    def reconnect(self) -> None:
        """Reconnect to the server with the same id and token (PeerJS rules).

        The attempt starts after the back-off delay of the peer's ``ReconnectPolicy``
        (none after your own ``disconnect()``; 0.5 s, 1 s, 2 s … 10 s with jitter after
        failures), so calling it from a ``disconnected`` handler cannot spin. Await
        ``peer.ready()`` to wait for the outcome.
        """
        if self.destroyed:
            raise PeerStateError(
                "This peer cannot reconnect to the server. It has already been destroyed."
            )
        if not self.disconnected or self.open:
            raise PeerStateError(
                f"Peer {self.id} cannot reconnect because it is not disconnected from the server!"
            )
        self.disconnected = False
        peer_id = self._last_server_id or self.id
        if peer_id is None:  # never got an id: start from scratch
            self._started = False
            self._start()
            return
        self._ready_future()
        delay = self._pacing.delay(self._failures)
        self._pending_reconnect = self._spawn(self._reconnect_after(delay, peer_id), "reconnect")

    async def _reconnect_after(self, delay: float, peer_id: str) -> None:
        if delay > 0:
            log.info("reconnecting as %s in %.2f s (failures so far: %d)",
                     peer_id, delay, self._failures)  # fmt: skip
            await asyncio.sleep(delay)
        self._pending_reconnect = None
        await self._connect_socket(peer_id)

    def _cancel_pending_reconnect(self) -> None:
        pending, self._pending_reconnect = self._pending_reconnect, None
        if pending is not None and pending is not asyncio.current_task():
            pending.cancel()

    def destroy(self) -> None:
        """Close every connection and the server socket; emits ``close``. Final."""
        if self.destroyed:
            return
        for conns in list(self._connections.values()):
            for conn in list(conns):
                conn.close()
        self.disconnect()
        self.destroyed = True
        self.emit("close")

    def _cancel_takeover(self) -> None:
        takeover, self._takeover = self._takeover, None
        if takeover is not None and takeover is not asyncio.current_task():
            takeover.cancel()

    def _close_socket(self) -> None:
        self._cancel_takeover()
        socket, self._socket = self._socket, None
        if socket is not None:
            self._socket_closing = self._spawn(socket.close(), "socket-close")

    # ------------------------------------------------------------------ errors

    def _emit_error(self, type: PeerErrorType, message: str) -> PeerError:
        err = PeerError(type, message)
        if not self.emit("error", err):
            log.warning("peer %s error %s: %s", self.id, type.value, message)
        return err

    def _abort(self, type: PeerErrorType, message: str) -> None:
        err = self._emit_error(type, message)
        self._fatal = err
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(err)
        if self._last_server_id is None:
            self.destroy()
        else:
            self._lost_server()

    # ------------------------------------------------------------------ connections

    @property
    def connections(self) -> dict[str, list[BaseConnection]]:
        """Open or opening connections by remote peer id (a copy)."""
        return {peer: list(conns) for peer, conns in self._connections.items() if conns}

    def get_connection(self, peer: str, connection_id: str) -> BaseConnection | None:
        for conn in self._connections.get(peer, []):
            if conn.connection_id == connection_id:
                return conn
        return None

    def connect(
        self,
        peer: str,
        *,
        label: str | None = None,
        metadata: Any = None,
        serialization: str = "binary",
        reliable: bool = False,
    ) -> DataConnection:
        """Open a data connection to ``peer``; ``await`` the result to wait until it is open."""
        if serialization not in SERIALIZATIONS:
            raise UnknownSerialization(f"Unknown serialization {serialization!r}")
        conn = DataConnection(
            peer, self, new_connection_id("dc"), label=label, metadata=metadata,
            serialization=serialization, reliable=reliable or serialization == "MsgPack",
            limits=self.options.limits,
        )  # fmt: skip
        if self._refuse_new_connection(conn):
            return conn
        self._add_connection(conn)
        conn._start_originator()
        return conn

    def call(self, peer: str, stream: MediaSource, *, metadata: Any = None) -> MediaConnection:
        """Call ``peer`` sending ``stream`` (tracks or a media source)."""
        local = MediaStream(local_tracks(stream))
        conn = MediaConnection(
            peer, self, new_connection_id("mc"), metadata=metadata, local_stream=local
        )
        if self._refuse_new_connection(conn):
            return conn
        self._add_connection(conn)
        conn._start_originator()
        return conn

    def _refuse_new_connection(self, conn: BaseConnection) -> bool:
        """Fail ``conn`` at once (peer and connection ``error``) if it cannot start."""
        if not isinstance(conn.peer, str) or not conn.peer or not is_valid_id(conn.peer):
            kind, text = PeerErrorType.INVALID_ID, f'ID "{conn.peer}" is invalid'
        elif self.disconnected or self.destroyed:
            kind = PeerErrorType.DISCONNECTED
            text = "Cannot connect to new Peer after disconnecting from server."
        else:
            return False
        self._emit_error(kind, text)
        conn._error(kind, text)
        conn.close()
        return True

    def _add_connection(self, conn: BaseConnection) -> None:
        self._connections.setdefault(conn.peer, []).append(conn)

    def _remove_connection(self, conn: BaseConnection) -> None:
        conns = self._connections.get(conn.peer, [])
        if conn in conns:
            conns.remove(conn)
        if not conns:
            self._connections.pop(conn.peer, None)

    # ------------------------------------------------------------------ signalling

    def _send(self, msg: dict[str, Any]) -> None:
        if self._socket is not None and not self._socket.closed:
            self._socket.send(msg)
        elif not self.disconnected and not self.destroyed:
            self._outbox.append(msg)
        else:
            log.warning("cannot send %s: disconnected from the server", msg.get("type"))

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        return self._tasks.spawn(coro, name)

    def _handle_message(self, msg: dict[str, Any]) -> None:
        kind, src, payload = msg.get("type"), msg.get("src"), msg.get("payload")
        handler = _HANDLERS.get(str(kind))
        if handler is not None:
            handler(self, msg)
        elif isinstance(src, str) and isinstance(payload, dict):
            self._for_connection(src, payload.get("connectionId"), msg)
        else:
            log.warning("ignoring server message of type %r", kind)

    def _on_open(self, msg: dict[str, Any]) -> None:
        self._cancel_takeover()
        if self.open:
            return
        log.debug("open as %s", self.id)
        self.open = True
        self._failures = 0
        self._last_server_id = self.id
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(self)
        self._set_sticky("open", self.id)
        self.emit("open", self.id)

    def _on_server_error(self, msg: dict[str, Any]) -> None:
        self._abort(PeerErrorType.SERVER_ERROR, str(_payload_field(msg, "msg")))

    def _on_id_taken(self, msg: dict[str, Any]) -> None:
        self._abort(PeerErrorType.UNAVAILABLE_ID, f'ID "{self.id}" is taken')

    def _on_invalid_key(self, msg: dict[str, Any]) -> None:
        self._abort(PeerErrorType.INVALID_KEY, f'API KEY "{self.options.key}" is invalid')

    def _on_leave(self, msg: dict[str, Any]) -> None:
        src = msg.get("src")
        log.debug("peer %s left", src)
        for conn in list(self._connections.get(str(src), [])):
            conn.close()

    def _on_expire(self, msg: dict[str, Any]) -> None:
        src = str(msg.get("src"))
        text = f"Could not connect to peer {src}"
        self._emit_error(PeerErrorType.PEER_UNAVAILABLE, text)
        for conn in list(self._connections.get(src, [])):
            if not conn.open:  # not in PeerJS: don't leave the caller hanging
                conn._error(PeerErrorType.PEER_UNAVAILABLE, text)
                conn.close()

    def _on_offer(self, msg: dict[str, Any]) -> None:
        src, payload = msg.get("src"), msg.get("payload")
        if not isinstance(src, str) or not isinstance(payload, dict):
            log.warning("ignoring an OFFER without src or payload")
            return
        connection_id = payload.get("connectionId")
        if not isinstance(connection_id, str) or not connection_id:
            log.warning("ignoring an OFFER from %s without connectionId", src)
            return
        existing = self.get_connection(src, connection_id)
        if existing is not None:
            existing.close()
        if payload.get("type") == "media":
            self._incoming_call(src, connection_id, payload)
        elif payload.get("type") == "data":
            self._incoming_connection(src, connection_id, payload)
        else:
            log.warning("ignoring an OFFER of unknown type %r", payload.get("type"))
            return
        for lost in self._lost.pop(connection_id, []):
            self._for_connection(src, connection_id, lost)

    def _incoming_call(self, src: str, connection_id: str, payload: dict[str, Any]) -> None:
        conn = MediaConnection(
            src, self, connection_id, metadata=payload.get("metadata"), offer_sdp=payload.get("sdp")
        )
        self._add_connection(conn)
        self.emit("call", conn)

    def _incoming_connection(self, src: str, connection_id: str, payload: dict[str, Any]) -> None:
        serialization = payload.get("serialization")
        conn = DataConnection(
            src, self, connection_id, label=_str_or_none(payload.get("label")),
            metadata=payload.get("metadata"),
            serialization=serialization if isinstance(serialization, str) else repr(serialization),
            reliable=bool(payload.get("reliable")), limits=self.options.limits,
            text_json="browser" in payload,
        )  # fmt: skip
        self._add_connection(conn)
        self.emit("connection", conn)
        conn._start_answerer(payload.get("sdp"))

    def _for_connection(self, src: str, connection_id: Any, msg: dict[str, Any]) -> None:
        if not isinstance(connection_id, str):
            log.warning("ignoring %s without connectionId", msg.get("type"))
            return
        conn = self.get_connection(src, connection_id)
        if conn is not None:
            conn.handle_message(msg)
        elif connection_id in self._lost or len(self._lost) < MAX_LOST_IDS:
            bucket = self._lost.setdefault(connection_id, [])
            if len(bucket) < MAX_LOST_PER_ID:
                bucket.append(msg)


_HANDLERS = {
    MessageType.OPEN.value: Peer._on_open,
    MessageType.ERROR.value: Peer._on_server_error,
    MessageType.ID_TAKEN.value: Peer._on_id_taken,
    MessageType.INVALID_KEY.value: Peer._on_invalid_key,
    MessageType.LEAVE.value: Peer._on_leave,
    MessageType.EXPIRE.value: Peer._on_expire,
    MessageType.OFFER.value: Peer._on_offer,
}


def _payload_field(msg: dict[str, Any], name: str) -> Any:
    payload = msg.get("payload")
    return payload.get(name) if isinstance(payload, dict) else None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _consume(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
