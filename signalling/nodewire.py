"""What one node publishes on another node's channel: pure encoding, no Redis.

A message is ``{n}:{head}{body}``: ``head`` is a JSON array of ``n`` characters holding
the entries, ``body`` the relayed frames one after another, cut back apart by the
lengths the entries carry. No separator is involved, so no id, token or payload (NUL
included) can forge an entry, and the frames are neither escaped into JSON strings nor
unescaped again (docs/decisions.md has the figures). Entries:

- ``["M", key, dst, queueable, [len, len, ...]]``: frames for ``dst`` under ``key``,
  in order; ``queueable`` is ``"1"`` when they may wait offline, ``""`` otherwise.
- ``["k", key, id]``: another node took over ``id`` with the same token.

A message that is a bare JSON array is a head without body (``k`` entries, and the
``["m", key, dst, frame, queueable]`` entries of earlier versions, still read).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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
    """One channel message: ``head``'s entries, then every frame they count, in order."""
    text = orjson.dumps(head).decode()
    return f"{len(text)}:{text}{''.join(frames)}"


def unpack(data: str) -> list[Entry]:
    """The entries of a :func:`pack` message (or of a bare JSON array), frames cut out;
    :class:`UnreadableMessage` if it does not add up."""
    if data.startswith("["):
        head_text, body = data, ""
    else:
        size, colon, rest = data.partition(":")
        if not colon or not size.isdigit() or int(size) > len(rest):
            raise UnreadableMessage("no head length, or a head cut short")
        head_text, body = rest[:int(size)], rest[int(size):]
    try:
        return list(_entries(orjson.loads(head_text), body))
    except (orjson.JSONDecodeError, TypeError) as exc:  # TypeError: a length not a number
        raise UnreadableMessage(str(exc)) from exc


def _entries(head: object, body: str) -> Iterator[Entry]:
    if not isinstance(head, list):
        raise UnreadableMessage("the head is not a list")
    pos = 0
    for entry in head:
        if not isinstance(entry, list) or not entry:
            raise UnreadableMessage("an entry is not a list")
        kind = entry[0]
        if kind == "M" and len(entry) == 5 and isinstance(entry[4], list):
            if entry[4] and min(entry[4]) < 0:
                raise UnreadableMessage("a negative length")
            ends = list(accumulate(entry[4], initial=pos))
            pos = ends[-1]
            if pos > len(body):
                raise UnreadableMessage("the body is shorter than its entries")
            frames = [body[a:b] for a, b in zip(ends, ends[1:], strict=False)]
            yield "M", str(entry[1]), str(entry[2]), bool(entry[3]), frames
        elif kind == "m" and len(entry) == 5:
            yield "M", str(entry[1]), str(entry[2]), bool(entry[4]), [str(entry[3])]
        elif kind == "k" and len(entry) == 3:
            yield "k", str(entry[1]), str(entry[2]), False, []
        else:
            raise UnreadableMessage(f"unknown entry {str(kind)[:20]!r}")
    if pos != len(body):
        raise UnreadableMessage("the body is longer than its entries")
