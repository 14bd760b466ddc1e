"""API keys. A key is a public tenant id (it sits in every browser), never a secret."""

from __future__ import annotations

import re
import secrets

from django.core.exceptions import ValidationError
from django.db import models

#: What a key may look like: the PeerJS id rule without spaces, since the key travels in
#: URL paths and the classic 0.3.x client checks keys with the id rule.
KEY_PATTERN = re.compile(r"^[A-Za-z0-9]+(?:[_-][A-Za-z0-9]+)*$")


def new_key_string() -> str:
    """A fresh random key string that passes the PeerJS 0.3.x key rule."""
    return secrets.token_hex(12)


def validate_key_string(value: str) -> None:
    """Refuse a key string PeerJS clients could not use."""
    if not KEY_PATTERN.match(value):
        raise ValidationError(
            "Use letters and digits, optionally joined by single - or _ characters.",
            code="invalid_key")


class ApiKey(models.Model):
    """One tenant: its key string, whether it is active, and its limits."""

    name = models.CharField(max_length=100)
    key = models.CharField(max_length=64, unique=True, default=new_key_string,
                           validators=[validate_key_string])
    active = models.BooleanField(default=True)
    concurrent_limit = models.PositiveIntegerField(
        default=0, help_text="Most peers connected at once under this key; 0 means no "
        "limit of its own (the server-wide CONCURRENT_LIMIT still applies).")
    allow_discovery = models.BooleanField(
        default=False, help_text="Serve GET {path}{key}/peers for this key.")
    allowed_origins = models.TextField(
        blank=True, help_text="One origin per line (https://app.example.com); empty: any.")
    rate_limit = models.PositiveIntegerField(
        default=0, help_text="Messages per second per peer; 0: the server's RATE_LIMIT.")
    queue_limit = models.PositiveIntegerField(
        default=0, help_text="Messages kept per offline destination; 0: QUEUE_LIMIT.")
    require_signed_tokens = models.BooleanField(
        default=False, help_text="Accept only PeerJS tokens minted by your backend with "
        "this key's signing secret (HMAC over key, peer id and expiry).")
    token_secret = models.CharField(
        max_length=64, blank=True, editable=False,
        help_text="Signing secret for tokens; shown once when generated.")
    stun_urls = models.TextField(
        blank=True, help_text="STUN servers for GET {path}{key}/ice, one URL per line.")
    created = models.DateTimeField(auto_now_add=True)
    last_used = models.DateTimeField(null=True, blank=True)
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.key})"

    def rotate_token_secret(self) -> str:
        """Set and return a new signing secret (the caller shows it once)."""
        self.token_secret = secrets.token_urlsafe(32)
        return self.token_secret

    def stun_list(self) -> list[str]:
        """The key's STUN server URLs."""
        return [u.strip() for u in self.stun_urls.splitlines() if u.strip()]

    def origin_list(self) -> list[str]:
        """The allowed origins as a list (empty means any origin)."""
        return [o.strip().rstrip("/") for o in self.allowed_origins.splitlines() if o.strip()]
