"""Usage figures per key, derived from the peer-session records.

Nothing is counted on the relay path: connections are session rows (by
``connected_at``) and messages are their ``messages_in + messages_out`` counters,
attributed to the hour the session connected. A live session's counters are refreshed
every 30 s by the session recorder, so the last half minute may be missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, F, IntegerField, OuterRef, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce, TruncHour

from apikeys.models import ApiKey
from signalling.models import PeerSession, UsageHour

HOURS = 24


def with_totals(keys: QuerySet[ApiKey]) -> QuerySet[ApiKey]:
    """Annotate ``session_count`` and ``message_count`` (all time) on each key.

    From the hourly rollups (a few rows per key and hour) plus the key's open sessions,
    so the key list stays fast with millions of session rows (see signalling.rollup).
    """
    rolled = UsageHour.objects.filter(api_key=OuterRef("key")).order_by().values("api_key")
    sessions = rolled.annotate(n=Sum("connections")).values("n")
    closed = rolled.annotate(m=Sum(F("messages_in") + F("messages_out"))).values("m")
    open_ = (PeerSession.objects.filter(api_key=OuterRef("key"), disconnected_at__isnull=True)
             .order_by().values("api_key")
             .annotate(m=Sum(F("messages_in") + F("messages_out"))).values("m"))
    zero = Value(0)
    return keys.annotate(
        session_count=Coalesce(Subquery(sessions), zero, output_field=IntegerField()),
        message_count=Coalesce(Subquery(closed), zero, output_field=IntegerField())
        + Coalesce(Subquery(open_), zero, output_field=IntegerField()),
    )


def hour_starts(now: datetime, hours: int = HOURS) -> list[datetime]:
    """The starts of the last ``hours`` whole-or-current hours, oldest first."""
    current = now.replace(minute=0, second=0, microsecond=0)
    return [current - timedelta(hours=n) for n in range(hours - 1, -1, -1)]


@dataclass(frozen=True, slots=True)
class KeyUsage:
    """One key's last 24 hours, hour by hour, and its live peers now."""

    key: str
    name: str
    active: bool
    exists: bool
    live: int
    connections: list[int]
    messages: list[int]

    @property
    def total_connections(self) -> int:
        """Connections over the whole window."""
        return sum(self.connections)

    @property
    def total_messages(self) -> int:
        """Messages over the whole window."""
        return sum(self.messages)


def hourly_counts(since: datetime) -> dict[str, dict[datetime, tuple[int, int]]]:
    """``{key: {hour: (connections, messages)}}`` for sessions since ``since`` (one query)."""
    rows = (PeerSession.objects.filter(connected_at__gte=since)
            .annotate(hour=TruncHour("connected_at")).order_by()
            .values("api_key", "hour")
            .annotate(n=Count("id"), m=Sum(F("messages_in") + F("messages_out"))))
    found: dict[str, dict[datetime, tuple[int, int]]] = {}
    for row in rows:
        found.setdefault(row["api_key"], {})[row["hour"]] = (row["n"], row["m"] or 0)
    return found


def usage_report(now: datetime, live: Mapping[str, int]) -> list[KeyUsage]:
    """Every key (and any deleted key still with activity), busiest first."""
    hours = hour_starts(now)
    counts = hourly_counts(hours[0])
    rows = {k.key: k for k in ApiKey.objects.all()}
    report = []
    for key in sorted(set(rows) | set(counts) | {k for k, n in live.items() if n}):
        per_hour = counts.get(key, {})
        row = rows.get(key)
        report.append(KeyUsage(
            key=key, name=row.name if row else "(deleted key)",
            active=bool(row and row.active), exists=row is not None,
            live=live.get(key, 0),
            connections=[per_hour.get(h, (0, 0))[0] for h in hours],
            messages=[per_hour.get(h, (0, 0))[1] for h in hours]))
    report.sort(key=lambda u: (-u.live, -u.total_connections, u.name, u.key))
    return report


def total_usage(report: list[KeyUsage]) -> KeyUsage:
    """All keys added together."""
    width = len(report[0].connections) if report else HOURS
    return KeyUsage(
        key="", name="All keys", active=True, exists=True,
        live=sum(u.live for u in report),
        connections=[sum(u.connections[i] for u in report) for i in range(width)],
        messages=[sum(u.messages[i] for u in report) for i in range(width)])
