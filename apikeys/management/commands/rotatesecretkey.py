"""``manage.py rotatesecretkey``: re-encrypt every stored signing secret with the
current SECRET_KEY (after a SECRET_KEY change, with the old one in SECRET_KEY_FALLBACKS)."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from apikeys.crypto import SecretUnreadable, encrypt
from apikeys.models import ApiKey

_COLUMNS = ("token_secret", "previous_token_secret")


class Command(BaseCommand):
    help = ("Re-encrypt every key's signing secrets with the current SECRET_KEY "
            "(the old key must be in SECRET_KEY_FALLBACKS).")

    def handle(self, *args: Any, **options: Any) -> None:
        count = 0
        try:
            with transaction.atomic():
                # Reading decrypts (with SECRET_KEY or a fallback); writing encrypts with
                # SECRET_KEY. One bad row stops the whole command and changes nothing.
                for row in ApiKey.objects.select_for_update().values("pk", *_COLUMNS):
                    changes = {c: encrypt(row[c]) for c in _COLUMNS if row[c]}
                    if changes:
                        ApiKey.objects.filter(pk=row["pk"]).update(**changes)
                        count += 1
        except SecretUnreadable as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"re-encrypted the signing secrets of {count} key(s)")
