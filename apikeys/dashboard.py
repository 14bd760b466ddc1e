"""The staff-only usage dashboard at ``/dashboard/``.

Per key: live peers now against the key's limit ("40 / 40, at limit"), and over 24 hours,
7 days or 30 days (``?range=``) the peak of live peers, connections and messages without
heartbeats, for the whole cluster or one node (``?node=``); refusals by reason; links to
the key's sessions and limit hits in the admin. Charts are inline SVG drawn here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.db.models import Count
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString

from apikeys.charts import bar_chart
from apikeys.live import live_peer_counts
from apikeys.usage import (
    DEFAULT_RANGE,
    RANGES,
    KeyUsage,
    Range,
    refusals_by_key,
    total_usage,
    usage_report,
)
from signalling import rollup
from signalling.models import PeerSession

REFRESH_SECONDS = 30


@dataclass(frozen=True, slots=True)
class KeyPanel:
    """One key's figures with its charts and admin links."""

    usage: KeyUsage
    peaks_chart: SafeString
    connections_chart: SafeString
    messages_chart: SafeString
    sessions_url: str
    limits_url: str


def admin_links(key: str) -> tuple[str, str]:
    """The admin's session list and limit-hit list, filtered to ``key``."""
    sessions = reverse("admin:signalling_peersession_changelist")
    limits = reverse("admin:signalling_limithit_changelist")
    query = urlencode({"key": key})
    return f"{sessions}?{query}", f"{limits}?{query}"


def panel(usage: KeyUsage, span: Range, labels: list[str]) -> KeyPanel:
    """Draw one key's charts."""
    name = usage.name if not usage.key else f"{usage.name} ({usage.key})"
    per = "hour" if span.bucket_hours == 1 else f"{span.bucket_hours} hours"
    if span.bucket_hours == 24:
        per = "day"
    every = span.label_every
    sessions_url, limits_url = admin_links(usage.key) if usage.key else ("", "")
    return KeyPanel(
        usage,
        bar_chart(usage.peaks, labels, f"Peak live peers per {per}, {name}", "peers at once",
                  every),
        bar_chart(usage.connections, labels, f"Connections per {per}, {name}", "connections",
                  every),
        bar_chart(usage.messages, labels, f"Messages (no heartbeats) per {per}, {name}",
                  "messages", every),
        sessions_url, limits_url)


def node_live_counts(node: str) -> dict[str, int]:
    """Open sessions per key on one node (the hub counts the whole cluster)."""
    rows = (PeerSession.objects.filter(disconnected_at__isnull=True, node=node)
            .order_by().values("api_key").annotate(n=Count("id")))
    return {row["api_key"]: row["n"] for row in rows}


@staff_member_required
def dashboard(request: HttpRequest) -> TemplateResponse:
    """The dashboard for ``?range=24h|7d|30d`` and optionally ``?node=NAME``."""
    now = timezone.now()
    span = RANGES.get(request.GET.get("range", ""), DEFAULT_RANGE)
    nodes = rollup.nodes(now - timedelta(days=30))
    node = request.GET.get("node") or None
    if node not in nodes:
        node = None
    live = node_live_counts(node) if node else live_peer_counts()
    labels = span.labels(now)
    report = usage_report(now, live, span, node)
    refusals: dict[str, int] = {}
    for per_key in refusals_by_key().values():
        for reason, n in per_key.items():
            refusals[reason] = refusals.get(reason, 0) + n
    total = total_usage(report)
    total.refusals = refusals
    context = {
        **admin.site.each_context(request),
        "title": "Usage dashboard",
        "is_nav_sidebar_enabled": False,  # the figures need the page's width
        "now": now,
        "refresh_seconds": REFRESH_SECONDS,
        "span": span,
        "ranges": [(r, _query(r.name, node)) for r in RANGES.values()],
        "node": node,
        "nodes": [(None, _query(span.name, None))] + [(n, _query(span.name, n)) for n in nodes],
        "total": panel(total, span, labels),
        "panels": [panel(u, span, labels) for u in report],
        "reasons": sorted(refusals),
    }
    return TemplateResponse(request, "dashboard.html", context)


def _query(span: str, node: str | None) -> str:
    params = {"range": span, **({"node": node} if node else {})}
    return "?" + urlencode(params)
