"""The admin's live-peers page of a key: kick a peer, ban and unban addresses.

Everything goes through the control plane (:mod:`signalling.control`), so it reaches
the peer wherever it is connected: every node of a cluster with ``REDIS_URL``, this
process's own node without it. Each action is recorded in the audit trail against the
key whose page it was taken from, and answered with an admin message.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from redis.exceptions import RedisError

from apikeys import audit
from apikeys.forms import BanForm
from apikeys.models import ApiKey
from signalling import control

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

logger = logging.getLogger(__name__)

TEMPLATE = "admin/apikeys/apikey/live_peers.html"
#: Errors of the control plane's stores and channel layer, shown as an admin message.
CONTROL_ERRORS = (RedisError, OSError, RuntimeError)


def page_url(key: ApiKey) -> str:
    """The live-peers page of ``key``."""
    return reverse("admin:apikeys_apikey_live", args=[key.pk])


def ban_rows(bans: dict[str, tuple[float, str]]) -> list[dict[str, Any]]:
    """Bans sorted by address, with their end as a UTC datetime, for the template."""
    return [{"address": address, "until": datetime.fromtimestamp(until, UTC),
             "reason": reason} for address, (until, reason) in sorted(bans.items())]


def live_peers_view(model_admin: ModelAdmin[ApiKey], request: HttpRequest,
                    object_id: str) -> HttpResponse:
    """GET: the key's live peers and the bans. POST: kick, ban or unban, then back."""
    key = model_admin.get_object(request, object_id)
    if key is None:
        raise Http404(f"No API key with id {object_id!r}")
    if not model_admin.has_change_permission(request, key):
        raise PermissionDenied
    form = BanForm(own_address=audit.request_address(request))
    if request.method == "POST":
        action = request.POST.get("action", "")
        if action == "kick":
            kick(request, key, request.POST.get("peer_id", ""))
            return HttpResponseRedirect(page_url(key))
        if action == "unban":
            unban(request, key, request.POST.get("address", ""))
            return HttpResponseRedirect(page_url(key))
        if action == "ban":
            form = BanForm(request.POST, own_address=audit.request_address(request))
            if form.is_valid():
                ban(request, key, form.cleaned_data)
                return HttpResponseRedirect(page_url(key))
        else:
            messages.error(request, f"Unknown action {action[:40]!r}.")
            return HttpResponseRedirect(page_url(key))
    return render(model_admin, request, key, form)


def render(model_admin: ModelAdmin[ApiKey], request: HttpRequest, key: ApiKey,
           form: BanForm) -> TemplateResponse:
    """The page itself; a store that cannot be read is said on the page, not a 500."""
    peers: list[control.LivePeer] = []
    bans: list[dict[str, Any]] = []
    problems = []
    try:
        peers = sorted(control.live_peers(key.key), key=lambda p: (p.peer_id, p.node))
    except CONTROL_ERRORS as exc:
        logger.warning("could not list the live peers of a key: %s", exc)
        problems.append(f"The live peers could not be listed: {exc}")
    try:
        bans = ban_rows(control.current_bans())
    except CONTROL_ERRORS as exc:
        logger.warning("could not list the bans: %s", exc)
        problems.append(f"The bans could not be listed: {exc}")
    context = {**model_admin.admin_site.each_context(request), "key": key,
               "peers": peers, "bans": bans, "form": form, "problems": problems,
               "opts": model_admin.model._meta, "title": f"Live peers of {key.name}"}
    return TemplateResponse(request, TEMPLATE, context)


def kick(request: HttpRequest, key: ApiKey, peer_id: str) -> None:
    """Disconnect one of the key's peers on whichever node holds it."""
    peer_id = peer_id.strip()
    if not peer_id:
        messages.error(request, "No peer id given.")
        return
    try:
        live = {p.peer_id for p in control.live_peers(key.key)}
        if peer_id not in live:
            messages.warning(request, f"Peer {peer_id[:64]} is not connected under {key.key} "
                             "(it may have left already); nothing was done.")
            return
        control.kick_peer(key.key, peer_id)
    except CONTROL_ERRORS as exc:
        logger.warning("kick failed: %s", exc)
        messages.error(request, f"Could not kick {peer_id}: {exc}")
        return
    audit.record_admin(request, [key], audit.CHANGE, f"Kicked peer {peer_id}.")
    messages.success(request, f"Kicked {peer_id}: it gets \u201cKicked by the operator\u201d "
                     "and is disconnected.")


def ban(request: HttpRequest, key: ApiKey, data: dict[str, Any]) -> None:
    """Ban an address on every node for the form's minutes."""
    address, minutes, reason = data["address"], int(data["minutes"]), data["reason"]
    try:
        control.ban_address(address, minutes * 60, reason)
    except CONTROL_ERRORS as exc:
        logger.warning("ban failed: %s", exc)
        messages.error(request, f"Could not ban {address}: {exc}")
        return
    why = f" ({reason})" if reason else ""
    audit.record_admin(request, [key], audit.CHANGE,
                       f"Banned address {address} for {minutes} minute(s){why}.")
    messages.success(request, f"Banned {address} for {minutes} minute(s): its sockets are "
                     "closed and new ones refused on every node.")


def unban(request: HttpRequest, key: ApiKey, address: str) -> None:
    """Lift the ban on an address on every node."""
    address = address.strip()
    if not address or len(address) > 64:
        messages.error(request, "No address given." if not address else "That is not an "
                       "address.")
        return
    try:
        control.unban_address(address)
    except CONTROL_ERRORS as exc:
        logger.warning("unban failed: %s", exc)
        messages.error(request, f"Could not unban {address}: {exc}")
        return
    audit.record_admin(request, [key], audit.CHANGE, f"Lifted the ban on {address}.")
    messages.success(request, f"Lifted the ban on {address}.")
