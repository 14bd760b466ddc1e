"""The API keys admin: live peers, usage totals, search, filters, (de)activation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.db.models import Case, IntegerField, QuerySet, Value, When
from django.http import HttpRequest
from django.utils.html import format_html

from apikeys import audit
from apikeys.forms import ApiKeyForm
from apikeys.lifecycle import forget_keys, set_active
from apikeys.live import live_peer_counts
from apikeys.models import ApiKey
from apikeys.usage import with_totals

if TYPE_CHECKING:  # ModelAdmin is generic only in django-stubs
    KeyAdminBase = admin.ModelAdmin[ApiKey]
else:
    KeyAdminBase = admin.ModelAdmin


def with_live_counts(keys: QuerySet[ApiKey], live: dict[str, int]) -> QuerySet[ApiKey]:
    """Annotate ``live_peers`` from a ``{key: count}`` snapshot (sortable in the list)."""
    whens = [When(key=key, then=Value(n)) for key, n in live.items() if n]
    return keys.annotate(live_peers=Case(*whens, default=Value(0),
                                         output_field=IntegerField()))


@admin.register(ApiKey)
class ApiKeyAdmin(KeyAdminBase):
    """Keys with their live peers (from the hub) and all-time sessions and messages."""

    form = ApiKeyForm
    # Narrow columns first, so live peers, sessions and messages stay on screen at
    # 1,024 px: the limit is shown with the live count ("40 / 40, at limit").
    list_display = ("name", "key", "live", "sessions", "messages_total", "links", "active",
                    "last_used")
    list_filter = ("active", "allow_discovery")
    search_fields = ("name", "key", "notes")
    readonly_fields = ("created", "last_used")
    actions = ("activate_keys", "deactivate_keys", "rotate_signing_secret")
    fieldsets = (
        (None, {"fields": ("name", "key", "active", "notes")}),
        ("Limits", {"fields": ("concurrent_limit", "rate_limit", "queue_limit")}),
        ("Access", {"fields": ("allow_discovery", "allowed_origins", "require_signed_tokens",
                               "stun_urls")}),
        ("Usage", {"fields": ("created", "last_used")}),
    )

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        """The key list without the navigation sidebar, so its figures fit at 1,024 px."""
        return super().changelist_view(
            request, {"is_nav_sidebar_enabled": False, **(extra_context or {})})

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiKey]:
        """Keys with live counts (one hub call per page) and usage totals."""
        keys = with_totals(super().get_queryset(request))
        return with_live_counts(keys, live_peer_counts())

    @admin.display(description="live / limit", ordering="live_peers")
    def live(self, obj: ApiKey) -> str:
        """Peers connected under the key right now, against its limit."""
        live, limit = int(getattr(obj, "live_peers", 0)), obj.concurrent_limit
        if not limit:
            return f"{live:,}"
        if live >= limit:
            return format_html('<strong class="peerhub-at-limit">{} / {}, at limit</strong>',
                               f"{live:,}", f"{limit:,}")
        return f"{live:,} / {limit:,}"

    @admin.display(description="sessions", ordering="session_count")
    def sessions(self, obj: ApiKey) -> str:
        """Peer sessions ever recorded under the key."""
        return f"{int(getattr(obj, 'session_count', 0)):,}"

    @admin.display(description="messages", ordering="message_count")
    def messages_total(self, obj: ApiKey) -> str:
        """Messages in and out over all its recorded sessions."""
        return f"{int(getattr(obj, 'message_count', 0)):,}"

    @admin.display(description="see")
    def links(self, obj: ApiKey) -> str:
        """Links to the key's sessions and limit hits."""
        from apikeys.dashboard import admin_links

        sessions, limits = admin_links(obj.key)
        return format_html('<span style="white-space: nowrap"><a href="{}">sessions</a> · '
                           '<a href="{}">limit hits</a></span>', sessions, limits)

    # --- the audit trail: Django's own entries get the client address --------------

    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        """Record an addition with the client address."""
        audit.record_admin(request, [obj], audit.ADDITION, message)

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        """Record a change with the client address."""
        audit.record_admin(request, [obj], audit.CHANGE, message)

    def log_deletions(self, request: HttpRequest, queryset: Any) -> Any:
        """Record deletions (before they happen) with the client address."""
        audit.record_admin(request, list(queryset), audit.DELETION, "Deleted.")

    @admin.action(description="Activate selected keys")
    def activate_keys(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        """Let the keys connect again."""
        changing = list(queryset.filter(active=False))
        count = set_active(queryset, True)
        audit.record_admin(request, changing, audit.CHANGE, "Activated (admin action).")
        self.message_user(request, f"Activated {count} key(s).", messages.SUCCESS)

    @admin.action(description="Deactivate selected keys (disconnects their peers)")
    def deactivate_keys(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        """Refuse new connections and close the keys' live peers within seconds."""
        changing = list(queryset.filter(active=True))
        count = set_active(queryset, False)
        audit.record_admin(request, changing, audit.CHANGE,
                           "Deactivated (admin action); live peers disconnected.")
        self.message_user(request, f"Deactivated {count} key(s); their live peers are being "
                          "disconnected.", messages.WARNING)

    @admin.action(description="Generate a new token signing secret (shown once)")
    def rotate_signing_secret(self, request: HttpRequest,
                              queryset: QuerySet[ApiKey]) -> None:
        """New signing secrets; each is shown in this message only, never again."""
        for row in queryset:
            secret = row.rotate_token_secret()
            row.save(update_fields=["token_secret"])
            audit.record_admin(request, [row], audit.CHANGE,
                               "Generated a new token signing secret (admin action).")
            self.message_user(request, f"New signing secret for {row.name} ({row.key}): "
                              f"{secret} (copy it now; it is not shown again).",
                              messages.WARNING)
        forget_keys(row.key for row in queryset)

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        """Save, then drop cached tenants for the key (and its old string if renamed)."""
        old = form.initial.get("key") if change else None
        super().save_model(request, obj, form, change)
        forget_keys(k for k in (old, obj.key) if k)

    def delete_model(self, request: HttpRequest, obj: ApiKey) -> None:
        """Delete; its live peers are closed by the key watcher."""
        super().delete_model(request, obj)
        forget_keys([obj.key])

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        """Bulk delete; forget the cached tenants."""
        keys = list(queryset.values_list("key", flat=True))
        super().delete_queryset(request, queryset)
        forget_keys(keys)
