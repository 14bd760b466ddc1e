"""Signing secrets at rest: encrypted with a key derived from ``SECRET_KEY``.

A copy of the database alone does not reveal any key's token signing secret: the column
holds ``enc1:`` followed by a Fernet token (AES-128-CBC and HMAC-SHA256, from
``cryptography``) whose key is derived from ``SECRET_KEY`` with HKDF-SHA256. Values
written before encryption existed (no prefix) are read as they are; the migration
``0004_rate_burst_encrypted_secrets`` encrypts them.

Rotating ``SECRET_KEY``: put the old value in ``SECRET_KEY_FALLBACKS`` (comma-separated),
set the new ``SECRET_KEY``, run ``manage.py rotatesecretkey`` (re-encrypts every secret
with the new key), then drop the fallback.
"""

from __future__ import annotations

import base64
import logging
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import models

logger = logging.getLogger(__name__)

PREFIX = "enc1:"
_INFO = b"peerhub apikeys signing secrets v1"


class SecretUnreadable(ValueError):
    """A stored secret cannot be decrypted with SECRET_KEY or any of its fallbacks."""


def _fernet_for(secret_key: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                   info=_INFO).derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


@lru_cache(maxsize=4)
def _fernet(secret_key: str, fallbacks: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([_fernet_for(k) for k in (secret_key, *fallbacks) if k])


def current_fernet() -> MultiFernet:
    """The cipher for SECRET_KEY (encrypts) and its fallbacks (decrypt only)."""
    return _fernet(str(settings.SECRET_KEY),
                   tuple(str(k) for k in getattr(settings, "SECRET_KEY_FALLBACKS", ())))


def encrypt(plain: str) -> str:
    """The stored form of ``plain`` (empty stays empty)."""
    if not plain:
        return ""
    return PREFIX + current_fernet().encrypt(plain.encode()).decode("ascii")


def decrypt(stored: str) -> str:
    """The secret a stored value holds; raise :class:`SecretUnreadable`."""
    if not stored.startswith(PREFIX):
        return stored  # written before encryption; the migration encrypts these
    try:
        return current_fernet().decrypt(stored[len(PREFIX):].encode("ascii")).decode()
    except (InvalidToken, UnicodeError) as exc:
        raise SecretUnreadable(
            "a signing secret cannot be decrypted: SECRET_KEY changed without "
            "SECRET_KEY_FALLBACKS holding the old one") from exc


class UnreadableSecret(str):
    """What a secret that cannot be decrypted reads as: empty (so every token signed
    with it is refused), while saving the row writes back what was stored, unchanged."""

    stored: str

    def __new__(cls, stored: str) -> UnreadableSecret:
        """An empty string remembering ``stored``."""
        self = super().__new__(cls, "")
        self.stored = stored
        return self


class EncryptedSecretField(models.CharField):
    """A text column that holds its value encrypted (see the module docstring).

    In Python the attribute is the plain secret; only the database sees ``enc1:...``.
    A value no key can decrypt (SECRET_KEY changed without its fallback) reads as an
    :class:`UnreadableSecret` and is logged: signed tokens of that key are refused, the
    rest of the key works, and nothing is overwritten.
    """

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        """Decrypt what the database holds."""
        if value is None:
            return value
        try:
            return decrypt(str(value))
        except SecretUnreadable as exc:
            logger.error("%s", exc)
            return UnreadableSecret(str(value))

    def get_prep_value(self, value: Any) -> Any:
        """Encrypt on the way to the database."""
        if isinstance(value, UnreadableSecret):
            return value.stored
        value = super().get_prep_value(value)
        if value is None or value == "" or str(value).startswith(PREFIX):
            return value
        return encrypt(str(value))
