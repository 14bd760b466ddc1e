"""Formatting the results: number styles and one Markdown table."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

NA = "n/a"


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table."""

    metric: str
    peerhub: str
    peerjs: str
    ratio: str


def count(x: float) -> str:
    """A whole number with thousands separators."""
    return NA if math.isnan(x) else f"{x:,.0f}"


def decimal(x: float, places: int = 2) -> str:
    """A number with ``places`` decimals."""
    return NA if math.isnan(x) else f"{x:,.{places}f}"


def percent(share: float) -> str:
    """A fraction of a core as a percentage."""
    return NA if math.isnan(share) else f"{share * 100:.1f} %"


def times(x: float) -> str:
    """A ratio like ``0.65``."""
    return "—" if math.isnan(x) else f"{x:.2f}"


def markdown_table(headers: Sequence[str], rows: Sequence[Row]) -> str:
    """A Markdown table with padded columns (readable as plain text too)."""
    cells = [list(headers)] + [[r.metric, r.peerhub, r.peerjs, r.ratio] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        padded = [v.ljust(widths[0]) if i == 0 else v.rjust(widths[i])
                  for i, v in enumerate(values)]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join("-" * (wd + 1) + (":" if i else "-") for i, wd in enumerate(widths)) + "|"
    return "\n".join([line(cells[0]), rule, *(line(c) for c in cells[1:])])
