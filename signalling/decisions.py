"""Pure routing and registration decisions: no sockets, no clock, no storage."""

from __future__ import annotations

from enum import Enum

from signalling.protocol import QUEUED_TYPES, RELAYED_TYPES, MessageType


class Claim(Enum):
    """Outcome of a peer asking for an id."""

    NEW = "new"            # registered: send OPEN, then flush its queue
    TAKEOVER = "takeover"  # same token: attach silently, flush its queue
    TAKEN = "taken"        # another token holds it: ID-TAKEN
    LIMIT = "limit"        # the concurrent limit is reached: ERROR


class Route(Enum):
    """What to do with one parsed client message."""

    DELIVER = "deliver"        # dst is online: send it there
    QUEUE = "queue"            # dst is offline: keep it for when dst registers
    DROP = "drop"              # nothing to do (unknown type, no dst, offline LEAVE/EXPIRE)
    UNREGISTER = "unregister"  # LEAVE without dst: the sender gives up its id
    HEARTBEAT = "heartbeat"    # liveness only
    FORWARD = "forward"        # dst holds its id on another node: send it there


class Where(Enum):
    """Where the cluster directory says a destination is."""

    HERE = "here"            # on this node
    ELSEWHERE = "elsewhere"  # on another node
    NOWHERE = "nowhere"      # not registered anywhere


def decide_claim(holder_token: str | None, token: str, at_limit: bool) -> Claim:
    """Decide a registration given the current holder's token (None when the id is free).

    A takeover by the same token is allowed even at the limit, as in peerjs-server.
    """
    if holder_token is not None:
        return Claim.TAKEOVER if holder_token == token else Claim.TAKEN
    return Claim.LIMIT if at_limit else Claim.NEW


def decide_route(msg_type: str, dst: str | None, dst_online: bool) -> Route:
    """Decide where a client message goes (peerjs-server's rules, see the protocol notes)."""
    if msg_type == MessageType.HEARTBEAT:
        return Route.HEARTBEAT
    if msg_type not in RELAYED_TYPES:
        return Route.DROP
    if dst is None:
        return Route.UNREGISTER if msg_type == MessageType.LEAVE else Route.DROP
    if dst_online:
        return Route.DELIVER
    return Route.QUEUE if msg_type in QUEUED_TYPES else Route.DROP


def needs_lookup(msg_type: str, dst: str | None) -> bool:
    """Tell whether routing this message depends on whether ``dst`` is online."""
    return dst is not None and msg_type in RELAYED_TYPES


def decide_handover(where: Where, queueable: bool) -> Route:
    """Decide what a cluster node does with a message it could not deliver locally at
    once, given where the directory now says its destination is."""
    if where is Where.HERE:
        return Route.DELIVER
    if where is Where.ELSEWHERE:
        return Route.FORWARD
    return Route.QUEUE if queueable else Route.DROP
