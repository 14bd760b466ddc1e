"""Bar charts as inline SVG, drawn on the server: no JavaScript, no CDN, works offline.

Pure functions of numbers and labels; every piece of text is escaped. Colours come from
CSS variables (``--peerhub-bar``, set by the dashboard for the light and the dark theme,
and the admin's own), so charts follow the admin's themes. The y axis is labelled with
thousands separators and gets as much room as its widest label needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH = 480
HEIGHT = 140
BOTTOM = 18    # room for the x-axis labels
TOP = 8
CHAR_WIDTH = 6.2  # of a digit at font-size 10, for the y-axis room


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


def axis_label(value: int) -> str:
    """A y-axis number: ``100,000``."""
    return f"{value:,}"


def left_margin(top: int) -> int:
    """Room left of the plot for the widest y-axis label (``top``) and a gap."""
    return max(24, int(len(axis_label(top)) * CHAR_WIDTH) + 8)


def layout(values: Sequence[int], top: int, left: int | None = None) -> list[Bar]:
    """Bars for ``values`` scaled so that ``top`` fills the plot's height."""
    left = left_margin(top) if left is None else left
    plot_w, plot_h = WIDTH - left, HEIGHT - BOTTOM - TOP
    slot = plot_w / len(values)
    bars = []
    for i, value in enumerate(values):
        h = plot_h * value / top
        bars.append(Bar(left + i * slot + slot * 0.1, TOP + plot_h - h, slot * 0.8, h))
    return bars


def bar_chart(values: Sequence[int], labels: Sequence[str], title: str,
              unit: str, label_every: int = 6) -> SafeString:
    """An SVG bar chart of ``values``, one bar per label, each with a hover title."""
    if not values or len(values) != len(labels):
        raise ChartError("need one label per value, and at least one value")
    if any(v < 0 for v in values):
        raise ChartError("values must not be negative")
    top = nice_ceiling(max(values))
    left = left_margin(top)
    bars = layout(values, top, left)
    base = HEIGHT - BOTTOM
    mid = TOP + (base - TOP) / 2
    quiet = 'style="fill: var(--body-quiet-color, #666)"'
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="100%" class="peerhub-chart" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{left}" y1="{base}" x2="{WIDTH}" y2="{base}" '
        'style="stroke: var(--hairline-color, #ccc)"/>',
        f'<line x1="{left}" y1="{TOP}" x2="{WIDTH}" y2="{TOP}" '
        'style="stroke: var(--hairline-color, #ccc); stroke-dasharray: 2 3"/>',
        f'<text class="y-label" x="{left - 4}" y="{TOP + 8}" text-anchor="end" '
        f'font-size="10" {quiet}>{axis_label(top)}</text>',
        f'<text class="y-label" x="{left - 4}" y="{base}" text-anchor="end" font-size="10" '
        f"{quiet}>0</text>",
    ]
    if top % 2 == 0:
        parts.append(f'<text class="y-label" x="{left - 4}" y="{mid + 4:.1f}" '
                     f'text-anchor="end" font-size="10" {quiet}>{axis_label(top // 2)}</text>')
    for i, (bar, value, label) in enumerate(zip(bars, values, labels, strict=True)):
        parts.append(
            f'<rect class="bar" x="{bar.x:.1f}" y="{bar.y:.1f}" width="{bar.width:.1f}" '
            f'height="{bar.height:.1f}" data-value="{value}" '
            'style="fill: var(--peerhub-bar, #417690)">'
            f"<title>{escape(label)}: {value:,} {escape(unit)}</title></rect>")
        if i % label_every == 0:
            parts.append(
                f'<text class="x-label" x="{bar.x:.1f}" y="{HEIGHT - 4}" font-size="10" '
                f"{quiet}>{escape(label)}</text>")
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text above is escaped
