"""API keys. A key is a public tenant id (it sits in every browser), never a secret."""

from __future__ import annotations

import re
import secrets
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from apikeys.crypto import EncryptedSecretField

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
    rate_burst = models.PositiveIntegerField(
        default=0, help_text="Messages a peer may send at once before its rate applies; "
        "0: equal to this key's rate limit (or, with no rate of its own, the server's "
        "RATE_BURST).")
    queue_limit = models.PositiveIntegerField(
        default=0, help_text="Messages kept per offline destination; 0: QUEUE_LIMIT.")
    require_signed_tokens = models.BooleanField(
        default=False, help_text="Accept only PeerJS tokens minted by your backend with "
        "this key's signing secret (HMAC over key, peer id and expiry).")
    token_secret = EncryptedSecretField(
        max_length=255, blank=True, editable=False,
        help_text="Signing secret for tokens; shown once when generated; stored "
        "encrypted with a key derived from SECRET_KEY.")
    previous_token_secret = EncryptedSecretField(
        max_length=255, blank=True, editable=False,
        help_text="The signing secret before the last rotation, still accepted until "
        "previous_secret_expires.")
    previous_secret_expires = models.DateTimeField(
        null=True, blank=True, help_text="Until when tokens signed with the previous "
        "signing secret are still accepted (set by a rotation with a grace period; "
        "clear it to refuse them now).")
    stun_urls = models.TextField(
        blank=True, help_text="STUN servers for GET {path}{key}/ice, one URL per line.")
    created = models.DateTimeField(auto_now_add=True)
    last_used = models.DateTimeField(null=True, blank=True)
    notes = models.TextField(blank=True)

    #: The fields :meth:`rotate_token_secret` changes.
    ROTATION_FIELDS = ("token_secret", "previous_token_secret", "previous_secret_expires")

    class Meta:
        ordering = ["name"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.key})"

    def rotate_token_secret(self, grace_seconds: int = 0) -> str:
        """Set and return a new signing secret (the caller shows it once).

        With ``grace_seconds``, tokens signed with the secret it replaces stay valid for
        that long (a backend that mints tokens can switch over without a gap); without,
        they are refused at once. Save ``ROTATION_FIELDS``.
        """
        if grace_seconds > 0 and self.token_secret:
            self.previous_token_secret = self.token_secret
            self.previous_secret_expires = timezone.now() + timedelta(seconds=grace_seconds)
        else:
            self.previous_token_secret = ""
            self.previous_secret_expires = None
        self.token_secret = secrets.token_urlsafe(32)
        return self.token_secret

    def accepted_previous_secret(self) -> tuple[str, float]:
        """The previous secret and until when (Unix seconds) it is accepted, if any."""
        until = self.previous_secret_expires
        if not self.previous_token_secret or until is None or until <= timezone.now():
            return "", 0.0
        return self.previous_token_secret, until.timestamp()

    def stun_list(self) -> list[str]:
        """The key's STUN server URLs."""
        return [u.strip() for u in self.stun_urls.splitlines() if u.strip()]

    def origin_list(self) -> list[str]:
        """The allowed origins as a list (empty means any origin)."""
        return [o.strip().rstrip("/") for o in self.allowed_origins.splitlines() if o.strip()]
