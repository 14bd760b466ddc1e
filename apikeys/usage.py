"""Usage figures per key for the admin and the dashboard, from the hourly rollups.

Nothing is counted on the relay path: the session writer keeps
:class:`~signalling.models.UsageHour` rows (connections when a session is recorded, its
messages and heartbeats when it ends, each node's peak of live peers), and the counters
of sessions still open are added from their rows, which the recorder refreshes every
minute. Messages are attributed to the hour their session connected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import F, IntegerField, OuterRef, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from apikeys.models import ApiKey
from signalling import rollup
from signalling.models import LimitHit, PeerSession, UsageHour

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
class Range:
    """A dashboard time range: how many hours, in buckets of how many hours."""

    name: str
    title: str
    hours: int
    bucket_hours: int
    label_format: str
    label_every: int

    def bucket_starts(self, now: datetime) -> list[datetime]:
        """The start of each bucket, oldest first; the last one holds the current hour."""
        hours = hour_starts(now, self.hours)
        return hours[::self.bucket_hours]

    def labels(self, now: datetime) -> list[str]:
        """One x-axis label per bucket."""
        return [b.strftime(self.label_format) for b in self.bucket_starts(now)]


RANGES = {r.name: r for r in (
    Range("24h", "24 hours", 24, 1, "%H:00", 6),
    Range("7d", "7 days", 24 * 7, 6, "%a %H:00", 4),
    Range("30d", "30 days", 24 * 30, 24, "%b %d", 5),
)}
DEFAULT_RANGE = RANGES["24h"]


@dataclass(slots=True)
class KeyUsage:
    """One key over a time range, bucket by bucket, with its live peers now."""

    key: str
    name: str
    active: bool
    exists: bool
    live: int
    connections: list[int]
    messages: list[int]            # without heartbeats
    heartbeats: list[int] = field(default_factory=list)
    peaks: list[int] = field(default_factory=list)
    limit: int = 0                 # the key's concurrent limit; 0: none
    refusals: dict[str, int] = field(default_factory=dict)

    @property
    def total_connections(self) -> int:
        """Connections over the whole range."""
        return sum(self.connections)

    @property
    def total_messages(self) -> int:
        """Messages (heartbeats apart) over the whole range."""
        return sum(self.messages)

    @property
    def total_heartbeats(self) -> int:
        """Heartbeats over the whole range."""
        return sum(self.heartbeats)

    @property
    def peak(self) -> int:
        """Most peers at once in the range (live now included)."""
        return max([self.live, *self.peaks])

    @property
    def at_limit(self) -> bool:
        """The key has a concurrent limit and its live peers reach it."""
        return self.limit > 0 and self.live >= self.limit

    @property
    def near_limit(self) -> bool:
        """At 90 % of the key's concurrent limit or more."""
        return self.limit > 0 and self.live * 10 >= self.limit * 9

    @property
    def live_text(self) -> str:
        """``40 / 40, at limit``, ``12 / 40`` or ``12`` (no key limit)."""
        if not self.limit:
            return f"{self.live:,}"
        text = f"{self.live:,} / {self.limit:,}"
        return f"{text}, at limit" if self.at_limit else text

    @property
    def total_refusals(self) -> int:
        """Refusals of every reason (all time)."""
        return sum(self.refusals.values())


def refusals_by_key() -> dict[str, dict[str, int]]:
    """All-time refusal counts per key and reason (the LimitHit rows)."""
    found: dict[str, dict[str, int]] = {}
    for hit in LimitHit.objects.order_by("api_key", "limit"):
        found.setdefault(hit.api_key, {})[hit.limit] = hit.count
    return found


def _columns(figures: list[rollup.HourFigures] | None, count: int
             ) -> tuple[list[int], list[int], list[int], list[int]]:
    if figures is None:
        return [0] * count, [0] * count, [0] * count, [0] * count
    return ([f.connections for f in figures], [f.signalling for f in figures],
            [f.heartbeats for f in figures], [f.peak_live for f in figures])


def usage_report(now: datetime, live: Mapping[str, int], span: Range = DEFAULT_RANGE,
                 node: str | None = None) -> list[KeyUsage]:
    """Every key (and any deleted key still with activity), busiest first."""
    starts = span.bucket_starts(now)
    counts = rollup.buckets(starts[0], span.bucket_hours, len(starts), node)
    rows = {k.key: k for k in ApiKey.objects.all()}
    refused = refusals_by_key()
    report = []
    for key in sorted(set(rows) | set(counts) | {k for k, n in live.items() if n}):
        row = rows.get(key)
        conns, msgs, beats, peaks = _columns(counts.get(key), len(starts))
        n_live = live.get(key, 0)
        peaks[-1] = max(peaks[-1], n_live)
        report.append(KeyUsage(
            key=key, name=row.name if row else "(deleted key)",
            active=bool(row and row.active), exists=row is not None, live=n_live,
            connections=conns, messages=msgs, heartbeats=beats, peaks=peaks,
            limit=row.concurrent_limit if row else 0, refusals=refused.get(key, {})))
    report.sort(key=lambda u: (-u.live, -u.total_connections, u.name, u.key))
    return report


def total_usage(report: list[KeyUsage]) -> KeyUsage:
    """All keys added together (peaks too: an upper bound of the peak of all keys)."""
    width = len(report[0].connections) if report else HOURS

    def add(values: str) -> list[int]:
        return [sum(getattr(u, values)[i] for u in report) for i in range(width)]

    refusals: dict[str, int] = {}
    for u in report:
        for reason, n in u.refusals.items():
            refusals[reason] = refusals.get(reason, 0) + n
    return KeyUsage(
        key="", name="All keys", active=True, exists=True, live=sum(u.live for u in report),
        connections=add("connections"), messages=add("messages"),
        heartbeats=add("heartbeats"), peaks=add("peaks"), refusals=refusals)
