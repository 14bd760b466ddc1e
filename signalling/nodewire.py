"""What one node publishes on another node's channel: pure encoding, no Redis.

A message is one or more parts ``{n}:{head}{body}`` back to back: ``head`` is a JSON
array of ``n`` characters holding the entries, ``body`` the relayed frames one after
another, cut back apart by the lengths the entries carry (so a part ends where its
entries say, and the next part, if any, starts there). No separator is involved, so no
id, token or payload (NUL included) can forge an entry, and the frames are neither
escaped into JSON strings nor unescaped again (docs/decisions.md has the figures).
Parts can be joined without reading them: the flush script (``HANDOVER`` in
``signalling.redis_scripts``) concatenates one part per destination into one message
per node. Entries:

- ``["M", key, dst, queueable, [len, len, ...]]``: frames for ``dst`` under ``key``,
  in order; ``queueable`` is ``"1"`` when they may wait offline, ``""`` otherwise.
- ``["k", key, id]``: another node took over ``id`` with the same token.

A message that is a bare JSON array is a head without body (``k`` entries, and the
``["m", key, dst, frame, queueable]`` entries of earlier versions, still read).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import accumulate

import orjson


class UnreadableMessage(ValueError):
    """A channel message that is not in this format (or was cut short)."""


#: One decoded entry: ``("M", key, dst, queueable, frames)`` or ``("k", key, id, False, [])``.
Entry = tuple[str, str, str, bool, list[str]]


def frames_entry(key: str, dst: str, queueable: bool, frames: Sequence[str]) -> list[object]:
    """The head entry for ``frames`` to ``dst`` (they go into the body in this order)."""
    return ["M", key, dst, "1" if queueable else "", [len(f) for f in frames]]


def moved_entry(key: str, peer_id: str) -> list[object]:
    """The head entry telling a node that ``peer_id`` was taken over elsewhere."""
    return ["k", key, peer_id]


def pack(head: list[list[object]], frames: Sequence[str]) -> str:
    """One part of a channel message: ``head``'s entries, then every frame they count,
    in order (parts joined end to end are a message too)."""
    text = orjson.dumps(head).decode()
    return f"{len(text)}:{text}{''.join(frames)}"


def unpack(data: str) -> list[Entry]:
    """The entries of a message of :func:`pack` parts (or of a bare JSON array), frames
    cut out; :class:`UnreadableMessage` if it does not add up."""
    if data.startswith("["):
        return _part(_load(data), "", 0)[0]
    entries: list[Entry] = []
    pos = 0
    while True:
        colon = data.find(":", pos)
        size = data[pos:colon]
        if colon < 0 or not size.isdigit():
            raise UnreadableMessage("no head length")
        body = colon + 1 + int(size)
        if body > len(data):
            raise UnreadableMessage("a head cut short")
        part, pos = _part(_load(data[colon + 1:body]), data, body)
        entries += part
        if pos == len(data):
            return entries


def _load(text: str) -> object:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise UnreadableMessage(str(exc)) from exc


def _part(head: object, data: str, pos: int) -> tuple[list[Entry], int]:
    """The entries of one part whose body starts at ``data[pos]``, and where it ends."""
    if not isinstance(head, list):
        raise UnreadableMessage("the head is not a list")
    out: list[Entry] = []
    for entry in head:
        if not isinstance(entry, list) or not entry:
            raise UnreadableMessage("an entry is not a list")
        kind = entry[0]
        if kind == "M" and len(entry) == 5 and isinstance(entry[4], list):
            try:
                ends = list(accumulate(entry[4], initial=pos))
            except TypeError as exc:  # a length that is not a number
                raise UnreadableMessage(str(exc)) from exc
            if entry[4] and min(entry[4]) < 0:
                raise UnreadableMessage("a negative length")
            pos = ends[-1]
            if pos > len(data):
                raise UnreadableMessage("the body is shorter than its entries")
            frames = [data[a:b] for a, b in zip(ends, ends[1:], strict=False)]
            out.append(("M", str(entry[1]), str(entry[2]), bool(entry[3]), frames))
        elif kind == "m" and len(entry) == 5:
            out.append(("M", str(entry[1]), str(entry[2]), bool(entry[4]), [str(entry[3])]))
        elif kind == "k" and len(entry) == 3:
            out.append(("k", str(entry[1]), str(entry[2]), False, []))
        else:
            raise UnreadableMessage(f"unknown entry {str(kind)[:20]!r}")
    return out, pos
