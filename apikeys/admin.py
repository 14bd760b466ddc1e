"""The API keys admin: live peers, usage totals, search, filters, (de)activation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.db.models import Case, IntegerField, QuerySet, Value, When
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils.html import format_html

from apikeys import audit, peercontrol
from apikeys.forms import ApiKeyForm
from apikeys.lifecycle import forget_keys, set_active
from apikeys.live import live_peer_counts, live_peer_ids
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


_SHOWN_IDS = 50


def describe_live(ids: list[str]) -> str:
    """``"3: alice, bob, carol"``: a count and the first ids."""
    if not ids:
        return "0"
    more = f" and {len(ids) - _SHOWN_IDS} more" if len(ids) > _SHOWN_IDS else ""
    return f"{len(ids)}: {', '.join(ids[:_SHOWN_IDS])}{more}"


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
    readonly_fields = ("created", "last_used", "live_peer_list")
    actions = ("activate_keys", "deactivate_keys", "rotate_signing_secret",
               "rotate_signing_secret_with_grace")
    fieldsets = (
        (None, {"fields": ("name", "key", "active", "live_peer_list", "notes")}),
        ("Limits", {"fields": ("concurrent_limit", "rate_limit", "rate_burst",
                               "queue_limit")}),
        ("Access", {"fields": ("allow_discovery", "allowed_origins", "require_signed_tokens",
                               "previous_secret_expires", "stun_urls")}),
        ("Usage", {"fields": ("created", "last_used")}),
    )
    #: The grace period of the "keep the old secret for an hour" rotation action.
    ROTATION_GRACE = 3600

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None
                            ) -> tuple[str, ...]:
        """A key's string is fixed once created: renaming it would orphan its sessions
        and drop its live peers. Create a new key instead."""
        fields = tuple(super().get_readonly_fields(request, obj))
        return (*fields, "key") if obj is not None else fields

    @admin.display(description="live peers")
    def live_peer_list(self, obj: ApiKey) -> str:
        """How many peers are connected under the key now, and their ids, with a link
        to the page that kicks them and bans addresses."""
        if obj.pk is None:
            return "-"
        return format_html('{} <a class="peerhub-live-link" href="{}">(kick a peer, ban '
                           'an address)</a>', describe_live(live_peer_ids(obj.key)),
                           peercontrol.page_url(obj))

    def get_urls(self) -> list[URLPattern]:
        """The admin's URLs, and each key's live-peers page (kick, ban, unban)."""
        def view(request: HttpRequest, object_id: str) -> HttpResponse:
            return peercontrol.live_peers_view(self, request, object_id)

        live = path("<path:object_id>/live/", self.admin_site.admin_view(view),
                    name="apikeys_apikey_live")
        return [live, *super().get_urls()]

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        """Django's list of what a delete removes, plus each key's live peers (they are
        disconnected): on the single and the bulk delete confirmation alike."""
        deleted, counts, perms, protected = super().get_deleted_objects(objs, request)
        total = 0
        for row in objs:
            ids = live_peer_ids(row.key)
            total += len(ids)
            deleted.append(f"Live peers of {row.key} (disconnected by the delete): "
                           f"{describe_live(ids)}")
        counts["live peers (disconnected)"] = total
        return deleted, counts, perms, protected

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
            return format_html('<strong class="peerhub-at-limit" style="color: '
                               'var(--error-fg, #ba2121); white-space: nowrap">'
                               '{} / {}, at limit</strong>', f"{live:,}", f"{limit:,}")
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
                           '<a href="{}">limit hits</a> · <a href="{}">live peers</a>'
                           '</span>', sessions, limits, peercontrol.page_url(obj))

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
    def deactivate_keys(self, request: HttpRequest,
                        queryset: QuerySet[ApiKey]) -> HttpResponse | None:
        """First a confirmation page listing the keys' live peers; once confirmed,
        refuse new connections and close the keys' live peers within seconds."""
        if request.POST.get("confirm") != "yes":
            keys = []
            for row in queryset:
                ids = live_peer_ids(row.key)
                keys.append({"key": row, "ids": ids, "shown": ids[:_SHOWN_IDS],
                             "more": max(0, len(ids) - _SHOWN_IDS)})
            context = {**self.admin_site.each_context(request), "keys": keys,
                       "title": "Deactivate API keys?", "opts": self.model._meta}
            return TemplateResponse(request,
                                    "admin/apikeys/apikey/deactivate_confirmation.html",
                                    context)
        changing = list(queryset.filter(active=True))
        count = set_active(queryset, False)
        audit.record_admin(request, changing, audit.CHANGE,
                           "Deactivated (admin action); live peers disconnected.")
        self.message_user(request, f"Deactivated {count} key(s); their live peers are being "
                          "disconnected.", messages.WARNING)
        return None

    @admin.action(description="Generate a new token signing secret (shown once; old "
                  "tokens refused at once)")
    def rotate_signing_secret(self, request: HttpRequest,
                              queryset: QuerySet[ApiKey]) -> None:
        """New signing secrets; each is shown in this message only, never again."""
        self._rotate(request, queryset, 0)

    @admin.action(description="Generate a new token signing secret (shown once; the old "
                  "one stays valid for an hour)")
    def rotate_signing_secret_with_grace(self, request: HttpRequest,
                                         queryset: QuerySet[ApiKey]) -> None:
        """New signing secrets; tokens signed with the old ones work for ROTATION_GRACE."""
        self._rotate(request, queryset, self.ROTATION_GRACE)

    def _rotate(self, request: HttpRequest, queryset: QuerySet[ApiKey], grace: int) -> None:
        for row in queryset:
            secret = row.rotate_token_secret(grace)
            row.save(update_fields=list(ApiKey.ROTATION_FIELDS))
            kept = (f" Tokens signed with the previous secret are accepted until "
                    f"{row.previous_secret_expires:%Y-%m-%d %H:%M} UTC."
                    if row.previous_secret_expires else "")
            audit.record_admin(request, [row], audit.CHANGE,
                               "Generated a new token signing secret (admin action)."
                               + kept.replace(" Tokens", " Old tokens"))
            self.message_user(request, f"New signing secret for {row.name} ({row.key}): "
                              f"{secret} (copy it now; it is not shown again).{kept}",
                              messages.WARNING)
        forget_keys(row.key for row in queryset)

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        """Save, then drop the cached tenant for the key."""
        super().save_model(request, obj, form, change)
        forget_keys([obj.key])

    def delete_model(self, request: HttpRequest, obj: ApiKey) -> None:
        """Delete; its live peers are closed by the key watcher."""
        super().delete_model(request, obj)
        forget_keys([obj.key])

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        """Bulk delete; forget the cached tenants."""
        keys = list(queryset.values_list("key", flat=True))
        super().delete_queryset(request, queryset)
        forget_keys(keys)
