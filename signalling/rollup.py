"""Hourly usage rollups (:class:`~signalling.models.UsageHour`): adding to them, rebuilding
them, and reading totals that stay fast with millions of session rows.

The session writer adds one :class:`Delta` per (hour, key, node) in each batch, in the
batch's transaction: a connection when a session's row is inserted, its messages when
it ends, and the node's peak of live peers. Reads add the counters of the sessions that
are still open (a handful of rows, found by the ``disconnected_at`` index), so totals
match the session rows exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import TruncHour

from signalling.models import PeerSession, UsageHour

RollupKey = tuple[datetime, str, str]  # (hour, api key, node)


@dataclass(slots=True)
class Delta:
    """What to add to one rollup row (``peak_live`` is a maximum, not a sum)."""

    connections: int = 0
    messages_in: int = 0
    messages_out: int = 0
    heartbeats: int = 0
    peak_live: int = 0


def hour_of(moment: datetime) -> datetime:
    """The start of ``moment``'s hour."""
    return moment.replace(minute=0, second=0, microsecond=0)


_COLUMNS = ("hour", "api_key", "node", "connections", "messages_in", "messages_out",
            "heartbeats", "peak_live")


def add(deltas: Mapping[RollupKey, Delta]) -> None:
    """Add ``deltas`` to the rollup rows (created as needed), in one statement per 500."""
    if not deltas:
        return
    ops = connection.ops
    table = ops.quote_name(UsageHour._meta.db_table)
    greatest = "GREATEST" if connection.vendor == "postgresql" else "MAX"
    sums = ", ".join(f"{c} = {table}.{c} + EXCLUDED.{c}" for c in _COLUMNS[3:7])
    one = "(" + ", ".join(["%s"] * len(_COLUMNS)) + ")"
    items = list(deltas.items())
    with connection.cursor() as cursor:
        for start in range(0, len(items), 500):
            chunk = items[start:start + 500]
            params: list[Any] = []
            for (hour, key, node), d in chunk:
                params += [ops.adapt_datetimefield_value(hour), key[:64], node[:100],
                           d.connections, d.messages_in, d.messages_out, d.heartbeats,
                           d.peak_live]
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(_COLUMNS)}) VALUES "
                f"{', '.join([one] * len(chunk))} ON CONFLICT (hour, api_key, node) DO UPDATE "
                f"SET {sums}, peak_live = {greatest}({table}.peak_live, EXCLUDED.peak_live)",
                params)


def rebuild() -> int:
    """Recompute every rollup row from the session rows; return how many rows it made.

    For upgrades and repairs (``manage.py rollupsessions --rebuild``): history of sessions
    already pruned is lost, and ``peak_live`` becomes the sessions open at once as far
    as connection hours tell (the count of sessions of the hour still open at its end
    is not known), so it is taken as 0 for closed hours.
    """
    rows = (PeerSession.objects.annotate(h=TruncHour("connected_at")).order_by()
            .values("h", "api_key", "node")
            .annotate(n=Count("id"),
                      mi=Sum("messages_in", filter=Q(disconnected_at__isnull=False)),
                      mo=Sum("messages_out", filter=Q(disconnected_at__isnull=False)),
                      hb=Sum("heartbeats", filter=Q(disconnected_at__isnull=False))))
    made = [UsageHour(hour=r["h"], api_key=r["api_key"], node=r["node"], connections=r["n"],
                      messages_in=r["mi"] or 0, messages_out=r["mo"] or 0,
                      heartbeats=r["hb"] or 0) for r in rows.iterator(chunk_size=5000)]
    with transaction.atomic():
        UsageHour.objects.all().delete()
        UsageHour.objects.bulk_create(made, batch_size=1000)
    return len(made)


# --- reading ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Totals:
    """One key's all-time figures."""

    sessions: int = 0
    messages: int = 0          # in + out
    heartbeats: int = 0


def key_totals(keys: Iterable[str] | None = None) -> dict[str, Totals]:
    """All-time sessions and messages per key: the rollups plus the open sessions."""
    rolled = UsageHour.objects.order_by()
    live = PeerSession.objects.filter(disconnected_at__isnull=True).order_by()
    if keys is not None:
        chosen = list(keys)
        rolled, live = rolled.filter(api_key__in=chosen), live.filter(api_key__in=chosen)
    found: dict[str, list[int]] = {}
    for r in rolled.values("api_key").annotate(
            n=Sum("connections"), m=Sum(F("messages_in") + F("messages_out")),
            hb=Sum("heartbeats")):
        found[r["api_key"]] = [r["n"] or 0, r["m"] or 0, r["hb"] or 0]
    for r in live.values("api_key").annotate(m=Sum(F("messages_in") + F("messages_out")),
                                             hb=Sum("heartbeats")):
        row = found.setdefault(r["api_key"], [0, 0, 0])
        row[1] += r["m"] or 0
        row[2] += r["hb"] or 0
    return {k: Totals(*v) for k, v in found.items()}


@dataclass(slots=True)
class HourFigures:
    """One hour of one key (on one node or all): what the dashboard draws."""

    connections: int = 0
    messages: int = 0          # in + out, heartbeats included
    heartbeats: int = 0
    peak_live: int = 0

    @property
    def signalling(self) -> int:
        """Messages other than heartbeats."""
        return max(0, self.messages - self.heartbeats)


def buckets(since: datetime, bucket_hours: int, count: int, node: str | None = None
            ) -> dict[str, list[HourFigures]]:
    """``{key: [figures of each bucket]}``: ``count`` buckets of ``bucket_hours`` from
    ``since`` (an hour start), all nodes added up or one ``node``. A bucket's peak is its
    busiest hour (with all nodes: the hour's node peaks added up, an upper bound)."""
    found: dict[str, list[HourFigures]] = {}

    def slot(key: str, index: int) -> HourFigures | None:
        if not 0 <= index < count:
            return None
        row = found.get(key)
        if row is None:
            row = found[key] = [HourFigures() for _ in range(count)]
        return row[index]

    for key, index, n, m, hb, peak in _rolled_buckets(since, bucket_hours, node):
        fig = slot(key, index)
        if fig is not None:
            fig.connections, fig.messages, fig.heartbeats, fig.peak_live = n, m, hb, peak
    live = PeerSession.objects.filter(disconnected_at__isnull=True,
                                      connected_at__gte=since).order_by()
    if node is not None:
        live = live.filter(node=node)
    for r in live.annotate(h=TruncHour("connected_at")).values("api_key", "h").annotate(
            m=Sum(F("messages_in") + F("messages_out")), hb=Sum("heartbeats")):
        index = int((r["h"] - since).total_seconds() // 3600) // bucket_hours
        fig = slot(r["api_key"], index)
        if fig is not None:
            fig.messages += r["m"] or 0
            fig.heartbeats += r["hb"] or 0
    return found


def _bucket_sql(bucket_hours: int) -> str:
    """SQL for the bucket number of ``hour`` counted from the first parameter."""
    if connection.vendor == "postgresql":
        return f"FLOOR(EXTRACT(EPOCH FROM (hour - %s::timestamptz)) / {3600 * bucket_hours})"
    return f"CAST(ROUND((julianday(hour) - julianday(%s)) * 24) / {bucket_hours} AS INTEGER)"


def _rolled_buckets(since: datetime, bucket_hours: int, node: str | None
                    ) -> list[tuple[str, int, int, int, int, int]]:
    """(key, bucket, connections, messages, heartbeats, peak) from the rollups, grouped in
    the database (30 days of many keys are tens of thousands of hourly rows)."""
    table = connection.ops.quote_name(UsageHour._meta.db_table)
    start = connection.ops.adapt_datetimefield_value(since)
    where, params = "hour >= %s", [start]
    if node is not None:
        where, params = where + " AND node = %s", [*params, node]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT api_key, {_bucket_sql(bucket_hours)} AS b, SUM(n), SUM(m), SUM(hb), "
            "MAX(peak) FROM (SELECT api_key, hour, SUM(connections) AS n, "
            "SUM(messages_in + messages_out) AS m, SUM(heartbeats) AS hb, "
            f"SUM(peak_live) AS peak FROM {table} WHERE {where} GROUP BY api_key, hour) "
            "AS per_hour GROUP BY api_key, b", [start, *params])
        rows = cursor.fetchall()
    return [(key, int(b), int(n or 0), int(m or 0), int(hb or 0), int(peak or 0))
            for key, b, n, m, hb, peak in rows]


def nodes(since: datetime) -> list[str]:
    """The nodes that recorded usage since ``since``."""
    return sorted(UsageHour.objects.filter(hour__gte=hour_of(since)).order_by()
                  .values_list("node", flat=True).distinct())


def window_start(now: datetime, hours: int) -> datetime:
    """The first hour of a window of ``hours`` ending with the current hour."""
    return hour_of(now) - timedelta(hours=hours - 1)
