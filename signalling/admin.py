"""The peer sessions admin: read-only, filtered by live/closed and by key."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from apikeys.models import ApiKey
from signalling.models import LimitHit, PeerSession

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


@admin.register(PeerSession)
class PeerSessionAdmin(SessionAdminBase):
    """Every peer registration; nothing here can be added, changed or deleted."""

    list_display = ("peer_id", "api_key", "node", "transport", "connected_at",
                    "disconnected_at", "duration", "close_reason", "messages_in",
                    "messages_out", "is_live")
    list_filter = (LiveFilter, KeyFilter, "transport", "node")
    search_fields = ("peer_id",)
    date_hierarchy = "connected_at"
    show_full_result_count = False
    list_per_page = 100

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
    list_filter = ("limit",)
    search_fields = ("api_key",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Counted by the server only."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Read-only."""
        return False
