"""Bar charts as inline SVG, drawn on the server: no JavaScript, no CDN, works offline.

Pure functions of numbers and labels; every piece of text is escaped. Colours come from
the admin's CSS variables, so charts follow its light and dark themes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH = 480
HEIGHT = 140
LEFT = 36      # room for the y-axis numbers
BOTTOM = 18    # room for the x-axis labels
TOP = 8


class ChartError(ValueError):
    """Values and labels that cannot make a chart."""


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar's place and size in the chart's coordinates."""

    x: float
    y: float
    width: float
    height: float


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... that is at least ``value`` (and >= 1)."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def layout(values: Sequence[int], top: int) -> list[Bar]:
    """Bars for ``values`` scaled so that ``top`` fills the plot's height."""
    plot_w, plot_h = WIDTH - LEFT, HEIGHT - BOTTOM - TOP
    slot = plot_w / len(values)
    bars = []
    for i, value in enumerate(values):
        h = plot_h * value / top
        bars.append(Bar(LEFT + i * slot + slot * 0.1, TOP + plot_h - h, slot * 0.8, h))
    return bars


def bar_chart(values: Sequence[int], labels: Sequence[str], title: str,
              unit: str, label_every: int = 6) -> SafeString:
    """An SVG bar chart of ``values``, one bar per label, each with a hover title."""
    if not values or len(values) != len(labels):
        raise ChartError("need one label per value, and at least one value")
    if any(v < 0 for v in values):
        raise ChartError("values must not be negative")
    top = nice_ceiling(max(values))
    bars = layout(values, top)
    base = HEIGHT - BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="100%" class="peerhub-chart" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{LEFT}" y1="{base}" x2="{WIDTH}" y2="{base}" '
        'style="stroke: var(--hairline-color, #ccc)"/>',
        f'<text x="{LEFT - 4}" y="{TOP + 8}" text-anchor="end" font-size="10" '
        f'style="fill: var(--body-quiet-color, #666)">{top}</text>',
        f'<text x="{LEFT - 4}" y="{base}" text-anchor="end" font-size="10" '
        'style="fill: var(--body-quiet-color, #666)">0</text>',
    ]
    for i, (bar, value, label) in enumerate(zip(bars, values, labels, strict=True)):
        parts.append(
            f'<rect class="bar" x="{bar.x:.1f}" y="{bar.y:.1f}" width="{bar.width:.1f}" '
            f'height="{bar.height:.1f}" data-value="{value}" '
            'style="fill: var(--primary, #79aec8)">'
            f"<title>{escape(label)}: {value} {escape(unit)}</title></rect>")
        if i % label_every == 0:
            parts.append(
                f'<text x="{bar.x:.1f}" y="{HEIGHT - 4}" font-size="10" '
                f'style="fill: var(--body-quiet-color, #666)">{escape(label)}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text above is escaped
