"""The admin's signing-secret action and the limit counters page (Django test client)."""

from __future__ import annotations

import pytest
from django.test import Client

from apikeys.models import ApiKey
from signalling.models import LimitHit
from signalling.tokens import mint_token, verify_token

pytestmark = pytest.mark.django_db


def test_rotate_action_shows_the_new_secret_once(admin_client: Client) -> None:
    key = ApiKey.objects.create(name="app", key="app-key")
    response = admin_client.post("/admin/apikeys/apikey/", {
        "action": "rotate_signing_secret", "_selected_action": [key.pk]}, follow=True)
    key.refresh_from_db()
    assert len(key.token_secret) >= 32
    assert key.token_secret in response.content.decode()
    token = mint_token(key.token_secret, "app-key", "alice", 2_000_000_000)
    assert verify_token(key.token_secret, "app-key", "alice", token, 0)
    change_page = admin_client.get(f"/admin/apikeys/apikey/{key.pk}/change/").content
    assert key.token_secret.encode() not in change_page


def test_limit_hits_are_listed_read_only(admin_client: Client) -> None:
    LimitHit.objects.create(api_key="app-key", limit="message rate", count=3)
    page = admin_client.get("/admin/signalling/limithit/")
    assert page.status_code == 200 and b"message rate" in page.content
    assert admin_client.get("/admin/signalling/limithit/add/").status_code == 403
