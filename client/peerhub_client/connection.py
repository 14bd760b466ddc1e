"""What data and media connections share: the RTCPeerConnection, ICE, open/close, errors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.exceptions import InternalError, InvalidAccessError, InvalidStateError, OperationError

from . import consent
from .errors import PeerError, PeerErrorType
from .events import EventEmitter, TaskSet
from .ice import InvalidCandidate, parse_candidate, rtc_configuration
from .protocol import MessageType
from .udpbuffer import raise_udp_receive_buffer

if TYPE_CHECKING:
    from .peer import Peer

__all__ = ["BaseConnection", "WEBRTC_ERRORS"]

log = logging.getLogger(__name__)

MAX_BUFFERED_CANDIDATES = 64
WEBRTC_ERRORS = (InternalError, InvalidAccessError, InvalidStateError, OperationError, ValueError)


class BaseConnection(EventEmitter):
    """One RTCPeerConnection with one remote peer, identified by ``connection_id``.

    ``open`` is sticky: a handler attached after the connection opened (and before it
    closed) is still called once.
    """

    type = ""

    def __init__(self, peer: str, provider: Peer, connection_id: str, metadata: Any = None) -> None:
        super().__init__()
        self.peer = peer
        self.provider = provider
        self.connection_id = connection_id
        self.metadata = metadata
        self.open = False
        self.peer_connection: RTCPeerConnection | None = None
        self._closed = False
        self._remote_described = False
        self._candidates: list[dict[str, Any]] = []
        self._tasks = TaskSet(f"{self.type}:{connection_id}")
        self._opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._opened.add_done_callback(_consume_exception)

    # ------------------------------------------------------------------ awaiting open

    def __await__(self) -> Generator[Any, None, Any]:
        return self._wait_open().__await__()

    async def _wait_open(self) -> Any:
        await asyncio.shield(self._opened)
        return self

    def _set_open(self) -> None:
        if self.open or self._closed:
            return
        self.open = True
        if not self._opened.done():
            self._opened.set_result(None)
        self._set_sticky("open")
        self.emit("open")

    # ------------------------------------------------------------------ errors and close

    def _error(self, type: PeerErrorType, message: str, *, fatal: bool = True) -> PeerError:
        """Emit ``error``; a ``fatal`` one also fails anyone awaiting the opening."""
        err = PeerError(type, message)
        if fatal and not self._opened.done():
            self._opened.set_exception(err)
        if not self.emit("error", err):
            log.warning("%s %s error: %s", self.type, self.connection_id, message)
        return err

    def close(self) -> None:
        """Close the connection (no signalling: the remote notices the channel/ICE going)."""
        if self._closed:
            return
        self._closed = True
        self.open = False
        self._clear_sticky("open")
        if not self._opened.done():
            self._opened.set_exception(
                PeerError(PeerErrorType.CONNECTION_CLOSED, f"Connection to {self.peer} closed.")
            )
        self._before_close()
        self._tasks.cancel_all()
        self.provider._remove_connection(self)
        if self.peer_connection is not None:
            self.provider._spawn(self.peer_connection.close(), f"close-{self.connection_id}")
        self.emit("close")

    @property
    def closed(self) -> bool:
        return self._closed

    def _before_close(self) -> None:
        """Hook: last words before ``close`` is emitted."""

    # ------------------------------------------------------------------ peer connection

    def _new_peer_connection(self) -> RTCPeerConnection:
        raise_udp_receive_buffer(self.provider.options.udp_receive_buffer)
        consent.install()  # late consent answers count (RFC 7675), see consent.py
        pc = RTCPeerConnection(rtc_configuration(self.provider.options.config))
        self.peer_connection = pc
        pc.on("iceconnectionstatechange", self._on_ice_state)
        return pc

    def _on_ice_state(self) -> None:
        pc = self.peer_connection
        if pc is None or self._closed:
            return
        state = pc.iceConnectionState
        log.debug("%s ICE state %s", self.connection_id, state)
        if state == "failed":
            self._error(
                PeerErrorType.NEGOTIATION_FAILED,
                f"Negotiation of connection to {self.peer} failed.",
            )
            self.close()
        elif state == "closed":
            self._error(PeerErrorType.CONNECTION_CLOSED, f"Connection to {self.peer} closed.")
            self.close()

    def _run(self, step: Callable[[], Awaitable[None]], name: str) -> None:
        """Run a negotiation step in the background; WebRTC failures become errors."""
        self._tasks.spawn(self._guarded(step), name)

    async def _guarded(self, step: Callable[[], Awaitable[None]]) -> None:
        try:
            await step()
        except WEBRTC_ERRORS as exc:
            log.debug("%s negotiation failed", self.connection_id, exc_info=True)
            if self._closed:
                return
            self.provider._emit_error(PeerErrorType.WEBRTC, str(exc) or type(exc).__name__)
            self._error(PeerErrorType.WEBRTC, f"WebRTC failure with {self.peer}: {exc}")
            self.close()

    async def _set_local(self, make: Callable[[], Awaitable[RTCSessionDescription]]) -> None:
        pc = self._pc()
        await pc.setLocalDescription(await make())

    def _local_sdp(self) -> dict[str, str]:
        desc = self._pc().localDescription
        return {"type": desc.type, "sdp": desc.sdp}

    def _pc(self) -> RTCPeerConnection:
        if self.peer_connection is None:
            raise InvalidStateError("no peer connection yet")
        return self.peer_connection

    async def _set_remote(self, sdp: Any) -> None:
        desc = _session_description(sdp)
        await self._pc().setRemoteDescription(desc)
        self._remote_described = True
        for payload in self._candidates:
            self._add_candidate(payload)
        self._candidates.clear()

    # ------------------------------------------------------------------ signalling in

    def handle_message(self, msg: dict[str, Any]) -> None:
        """An ANSWER or CANDIDATE for this connection."""
        payload = msg.get("payload")
        if msg["type"] == MessageType.CANDIDATE:
            self._handle_candidate(payload)
        elif msg["type"] == MessageType.ANSWER:
            self._handle_answer(payload)
        else:
            log.warning("unexpected %s for %s", msg["type"], self.connection_id)

    def _handle_answer(self, payload: Any) -> None:
        if not isinstance(payload, dict):
            log.warning("ANSWER for %s without payload", self.connection_id)
            return
        self._run(lambda: self._on_answer(payload.get("sdp")), "answer")

    async def _on_answer(self, sdp: Any) -> None:
        await self._set_remote(sdp)

    def _handle_candidate(self, payload: Any) -> None:
        if self._remote_described:
            self._add_candidate(payload)
        elif len(self._candidates) < MAX_BUFFERED_CANDIDATES:
            self._candidates.append(payload)
        else:
            log.warning("too many early candidates for %s; dropping", self.connection_id)

    def _add_candidate(self, payload: Any) -> None:
        try:
            candidate = parse_candidate(payload)
        except InvalidCandidate as exc:
            log.warning("bad candidate for %s: %s", self.connection_id, exc)
            return
        if candidate is not None:
            # in the background: resolving mDNS names can take seconds (interop notes)
            self._tasks.spawn(self._add_ice(candidate), "candidate")

    async def _add_ice(self, candidate: Any) -> None:
        try:
            await self._pc().addIceCandidate(candidate)
        except WEBRTC_ERRORS as exc:
            log.debug("candidate not added to %s: %s", self.connection_id, exc)


def _session_description(sdp: Any) -> RTCSessionDescription:
    if not isinstance(sdp, dict) or not isinstance(sdp.get("sdp"), str):
        raise ValueError("signalling payload has no SDP")
    if sdp.get("type") not in ("offer", "answer"):
        raise ValueError(f"unexpected SDP type {sdp.get('type')!r}")
    return RTCSessionDescription(sdp=sdp["sdp"], type=sdp["type"])


def _consume_exception(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
