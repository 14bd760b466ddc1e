"""The audit trail: admin changes and key commands leave LogEntry rows shown in the admin."""

from __future__ import annotations

import io

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.core.management import call_command
from django.test import Client

from apikeys.audit import SYSTEM_USERNAME
from apikeys.models import ApiKey

pytestmark = pytest.mark.django_db

FORM = {"name": "shop", "key": "shop-key", "active": "on", "concurrent_limit": "5",
        "rate_limit": "0", "rate_burst": "0", "queue_limit": "0", "allowed_origins": "",
        "stun_urls": "", "previous_secret_expires_0": "", "previous_secret_expires_1": "",
        "notes": ""}


def entries(key: ApiKey) -> list[LogEntry]:
    return list(LogEntry.objects.filter(object_id=str(key.pk)).order_by("action_time", "pk"))


def post_action(client: Client, action: str, key: ApiKey) -> None:
    response = client.post("/admin/apikeys/apikey/", {"action": action,
                                                      "_selected_action": [key.pk]})
    assert response.status_code == 302


def test_admin_changes_are_recorded_with_user_and_address(admin_client: Client,
                                                          admin_user: object) -> None:
    response = admin_client.post("/admin/apikeys/apikey/add/", FORM,
                                 REMOTE_ADDR="192.0.2.10")
    assert response.status_code == 302, response.content[:2000]
    key = ApiKey.objects.get(key="shop-key")
    admin_client.post(f"/admin/apikeys/apikey/{key.pk}/change/",
                      {**FORM, "concurrent_limit": "9"}, REMOTE_ADDR="192.0.2.11")
    response = admin_client.post("/admin/apikeys/apikey/", {
        "action": "deactivate_keys", "_selected_action": [key.pk], "confirm": "yes"})
    assert response.status_code == 302
    post_action(admin_client, "activate_keys", key)
    post_action(admin_client, "rotate_signing_secret", key)
    rows = entries(key)
    assert [r.action_flag for r in rows] == [ADDITION, CHANGE, CHANGE, CHANGE, CHANGE]
    assert all(r.user == admin_user for r in rows)
    texts = [r.get_change_message() for r in rows]
    assert texts[0] == "Added. From 192.0.2.10."
    assert "Concurrent limit" in texts[1] and texts[1].endswith("From 192.0.2.11.")
    assert texts[2].startswith("Deactivated (admin action)")
    assert texts[3].startswith("Activated (admin action)")
    assert texts[4].startswith("Generated a new token signing secret")
    assert all("From 127.0.0.1." in t for t in texts[2:])
    # Visible in the admin: the key's history and the index's Recent actions.
    history = admin_client.get(f"/admin/apikeys/apikey/{key.pk}/history/").content.decode()
    assert "Deactivated (admin action)" in history and "From 192.0.2.10." in history
    index = admin_client.get("/admin/").content.decode()
    assert "shop" in index and "Recent actions" in index

    admin_client.post("/admin/apikeys/apikey/", {"action": "delete_selected",
                                                 "_selected_action": [key.pk], "post": "yes"})
    assert not ApiKey.objects.filter(pk=key.pk).exists()
    deletion = LogEntry.objects.get(object_id=str(key.pk), action_flag=DELETION)
    assert deletion.get_change_message() == "Deleted. From 127.0.0.1."


def test_an_action_that_changes_nothing_records_nothing(admin_client: Client) -> None:
    key = ApiKey.objects.create(name="on", key="already-on")
    post_action(admin_client, "activate_keys", key)
    assert entries(key) == []


def test_every_key_command_is_recorded_under_the_system_user() -> None:
    call_command("createkey", "cli", "--key", "cli-key", "--limit", "3",
                 stdout=io.StringIO())
    key = ApiKey.objects.get(key="cli-key")
    call_command("rotatesecret", "cli-key", "--require", stdout=io.StringIO())
    call_command("deactivatekey", "cli-key", stdout=io.StringIO())
    call_command("ensuredefaultkey", stdout=io.StringIO())
    call_command("ensuredefaultkey", stdout=io.StringIO())  # exists: no entry
    rows = entries(key)
    assert [r.action_flag for r in rows] == [ADDITION, CHANGE, CHANGE]
    assert {r.user.username for r in rows} == {SYSTEM_USERNAME}
    assert not rows[0].user.is_active and not rows[0].user.has_usable_password()
    texts = [r.get_change_message() for r in rows]
    assert "By manage.py createkey, run by " in texts[0]
    assert "Signed tokens are now required." in texts[1]
    assert "By manage.py deactivatekey" in texts[2]
    default = ApiKey.objects.get(key="peerjs")
    assert [r.get_change_message().split(" By ")[0] for r in entries(default)] == [
        "Created the default key."]
