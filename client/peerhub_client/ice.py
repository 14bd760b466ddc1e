"""ICE helpers: PeerJS-style ``config`` dicts to aiortc objects, remote candidates."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiortc import RTCConfiguration, RTCIceCandidate, RTCIceServer
from aiortc.sdp import candidate_from_sdp

__all__ = ["InvalidCandidate", "parse_candidate", "rtc_configuration"]


class InvalidCandidate(ValueError):
    """A CANDIDATE payload that cannot be turned into an ``RTCIceCandidate``."""


def rtc_configuration(config: Mapping[str, Any] | RTCConfiguration | None) -> RTCConfiguration:
    """Map ``{"iceServers": [{"urls", "username", "credential"}]}`` to aiortc.

    No ``iceServers`` means none at all (aiortc's default public STUN would stall
    every connection where it is unreachable).
    """
    if isinstance(config, RTCConfiguration):
        return config
    servers = (config or {}).get("iceServers") or []
    return RTCConfiguration(iceServers=[_ice_server(s) for s in servers])


def _ice_server(server: Mapping[str, Any]) -> RTCIceServer:
    urls = server.get("urls", server.get("url"))
    if not urls:
        raise ValueError(f"ICE server without urls: {server!r}")
    return RTCIceServer(
        urls=urls,
        username=server.get("username"),
        credential=server.get("credential"),
    )


def parse_candidate(payload: Any) -> RTCIceCandidate | None:
    """The candidate inside a CANDIDATE payload; None for an empty (end) candidate."""
    cand = payload.get("candidate") if isinstance(payload, Mapping) else None
    if not isinstance(cand, Mapping):
        raise InvalidCandidate("CANDIDATE payload has no candidate object")
    text = cand.get("candidate")
    if not isinstance(text, str):
        raise InvalidCandidate("candidate string missing")
    if not text:
        return None
    if text.startswith("candidate:"):
        text = text[len("candidate:") :]
    try:
        parsed = candidate_from_sdp(text)
    except (ValueError, IndexError) as exc:
        raise InvalidCandidate(f"unparsable candidate {text!r}") from exc
    parsed.sdpMid = cand.get("sdpMid")
    parsed.sdpMLineIndex = cand.get("sdpMLineIndex")
    return parsed
