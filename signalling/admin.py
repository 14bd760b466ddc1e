"""The peer sessions admin: read-only, filtered by live/closed and by key."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.contrib.admin.views.main import SEARCH_VAR
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import F, QuerySet, Value
from django.db.models.expressions import BaseExpression
from django.http import HttpRequest
from django.utils import timezone
from django.utils.functional import cached_property

from apikeys.models import ApiKey
from signalling import rollup
from signalling.models import LimitHit, PeerSession

#: Counting more matching sessions than this for the page links is not worth its cost
#: with millions of rows: the list shows this many at most (filters narrow it down).
COUNT_CAP = 10_000

if TYPE_CHECKING:  # ModelAdmin is generic only in django-stubs
    SessionAdminBase = admin.ModelAdmin[PeerSession]
    LimitAdminBase = admin.ModelAdmin[LimitHit]
else:
    SessionAdminBase = LimitAdminBase = admin.ModelAdmin


class LiveFilter(admin.SimpleListFilter):
    """Sessions still open, or closed."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        """The two choices."""
        return [("live", "live"), ("closed", "closed")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """Filter on ``disconnected_at`` being empty or not."""
        if self.value() == "live":
            return queryset.filter(disconnected_at__isnull=True)
        if self.value() == "closed":
            return queryset.filter(disconnected_at__isnull=False)
        return queryset


class KeyFilter(admin.SimpleListFilter):
    """Sessions of one API key, listed by the key's name."""

    title = "API key"
    parameter_name = "key"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        """Every key, as ``name (key)``."""
        return [(k.key, f"{k.name} ({k.key})") for k in ApiKey.objects.order_by("name")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """Filter on ``api_key``."""
        value = self.value()
        return queryset if value is None else queryset.filter(api_key=value)


class RecentFilter(admin.SimpleListFilter):
    """Sessions that connected within the last hour, day, week or 30 days."""

    title = "connected"
    parameter_name = "since"
    HOURS = {"1h": 1, "24h": 24, "7d": 24 * 7, "30d": 24 * 30}

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        """The four ranges."""
        return [("1h", "last hour"), ("24h", "last 24 hours"), ("7d", "last 7 days"),
                ("30d", "last 30 days")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """Filter on ``connected_at`` (indexed)."""
        hours = self.HOURS.get(self.value() or "")
        if hours is None:
            return queryset
        return queryset.filter(connected_at__gte=timezone.now() - timedelta(hours=hours))


class NodeFilter(admin.SimpleListFilter):
    """Sessions of one node, among the nodes with usage in the last 30 days."""

    title = "node"
    parameter_name = "node"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        """Nodes from the rollups (a DISTINCT over millions of sessions would be slow)."""
        return [(n, n) for n in rollup.nodes(timezone.now() - timedelta(days=30))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """Filter on ``node`` (indexed)."""
        value = self.value()
        return queryset if value is None else queryset.filter(node=value)


class TransportFilter(admin.SimpleListFilter):
    """Websocket or 0.3.x stream sessions (fixed choices: a DISTINCT would scan every row)."""

    title = "transport"
    parameter_name = "transport"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        """The transports peerhub records."""
        return [("websocket", "websocket"), ("xhr-stream", "0.3.x stream")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """Filter on ``transport``."""
        value = self.value()
        return queryset if value is None else queryset.filter(transport=value)


class CappedPaginator(Paginator):
    """Counts at most :data:`COUNT_CAP` rows, so a page never scans the whole table."""

    @cached_property
    def count(self) -> int:
        """Matching rows, up to the cap."""
        items = self.object_list
        if isinstance(items, QuerySet):
            return int(items[:COUNT_CAP].count())
        return len(items)


@admin.register(PeerSession)
class PeerSessionAdmin(SessionAdminBase):
    """Every peer registration; nothing here can be added, changed or deleted."""

    list_display = ("peer_id", "api_key", "node", "transport", "connected_at",
                    "disconnected_at", "duration", "close_reason", "messages_in",
                    "messages_out", "is_live")
    list_filter = (LiveFilter, RecentFilter, KeyFilter, TransportFilter, NodeFilter)
    # A case-insensitive prefix of the peer id (PostgreSQL: an index on UPPER(peer_id)).
    search_fields = ("^peer_id",)
    search_help_text = "The beginning of a peer id (case-insensitive)."
    show_full_result_count = False
    list_per_page = 100
    paginator = CappedPaginator

    def get_ordering(self, request: HttpRequest) -> Any:  # Django takes expressions too
        """Newest first; while searching on PostgreSQL, by a time the planner cannot read
        off an index (``search_ordering``)."""
        ordering = list(super().get_ordering(request) or ())
        if request.GET.get(SEARCH_VAR) and connection.vendor == "postgresql":
            return search_ordering(ordering)
        return ordering

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Sessions are recorded by the server only."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Read-only."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Old sessions go with ``manage.py prunesessions``."""
        return False

    @admin.display(description="live", boolean=True, ordering="disconnected_at")
    def is_live(self, obj: PeerSession) -> bool:
        """True while the session has no recorded end."""
        return obj.live

    @admin.display(description="duration")
    def duration(self, obj: PeerSession) -> str:
        """How long the session lasted (so far), to the second."""
        end = obj.disconnected_at or obj.last_seen or obj.connected_at
        return str(timedelta(seconds=int((end - obj.connected_at).total_seconds())))


@admin.register(LimitHit)
class LimitHitAdmin(LimitAdminBase):
    """How often each limit refused something, per key; read-only."""

    list_display = ("limit", "api_key", "count", "last_at")
    list_filter = ("limit", KeyFilter)
    search_fields = ("api_key",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Counted by the server only."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Read-only."""
        return False


def search_ordering(ordering: Sequence[str]) -> list[str | BaseExpression]:
    """``ordering`` with ``connected_at`` replaced by ``connected_at + 0 seconds``.

    A peer id prefix search is served by the ``UPPER(peer_id)`` index, then sorted.
    Ordered by the plain column, PostgreSQL may instead walk the ``connected_at`` index
    backwards and filter until a page is full, which its estimate of a rare prefix
    decides: ANALYZE's histogram of 100 samples holds one matching a three-letter
    prefix about one time in forty and then puts the prefix at 1 %, 40 times too
    common, and the walk read 426,743 of 2,000,000 rows for ``?q=abc`` instead of 952
    (tests/test_admin_scale.py). An expression no index holds leaves only the first.
    """
    shifted = F("connected_at") + Value(timedelta(0))
    out: list[str | BaseExpression] = []
    for field in ordering:
        if field == "-connected_at":
            out.append(shifted.desc())
        elif field == "connected_at":
            out.append(shifted.asc())
        else:
            out.append(field)
    return out

