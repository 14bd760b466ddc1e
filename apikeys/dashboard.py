"""The staff-only usage dashboard at ``/dashboard/``: live peers and 24-hour charts."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.safestring import SafeString

from apikeys.charts import bar_chart
from apikeys.live import live_peer_counts
from apikeys.usage import KeyUsage, hour_starts, total_usage, usage_report

REFRESH_SECONDS = 30


@dataclass(frozen=True, slots=True)
class KeyPanel:
    """One key's figures with its two charts."""

    usage: KeyUsage
    connections_chart: SafeString
    messages_chart: SafeString


def panel(usage: KeyUsage, labels: list[str]) -> KeyPanel:
    """Draw one key's charts."""
    name = usage.name if not usage.key else f"{usage.name} ({usage.key})"
    return KeyPanel(
        usage,
        bar_chart(usage.connections, labels, f"Connections per hour, {name}", "connections"),
        bar_chart(usage.messages, labels, f"Messages per hour, {name}", "messages"))


@staff_member_required
def dashboard(request: HttpRequest) -> TemplateResponse:
    """Per key: live peers now, connections and messages per hour over 24 hours."""
    now = timezone.now()
    labels = [h.strftime("%H:00") for h in hour_starts(now)]
    report = usage_report(now, live_peer_counts())
    context = {
        **admin.site.each_context(request),
        "title": "Usage dashboard",
        "now": now,
        "refresh_seconds": REFRESH_SECONDS,
        "total": panel(total_usage(report), labels),
        "panels": [panel(u, labels) for u in report],
    }
    return TemplateResponse(request, "dashboard.html", context)
