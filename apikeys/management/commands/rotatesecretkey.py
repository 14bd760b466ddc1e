"""``manage.py rotatesecretkey``: re-encrypt every stored signing secret with the
current SECRET_KEY (after a SECRET_KEY change, with the old one in SECRET_KEY_FALLBACKS)."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from apikeys import audit
from apikeys.crypto import SecretUnreadable, decrypt, encrypt
from apikeys.models import ApiKey

_COLUMNS = ("token_secret", "previous_token_secret")


class Command(BaseCommand):
    help = ("Re-encrypt every key's signing secrets with the current SECRET_KEY "
            "(the old key must be in SECRET_KEY_FALLBACKS).")

    def handle(self, *args: Any, **options: Any) -> None:
        changed: list[int] = []
        table = connection.ops.quote_name(ApiKey._meta.db_table)
        names = ", ".join(connection.ops.quote_name(c) for c in _COLUMNS)
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                # The stored values as they are (no field decrypting them on the way):
                # decrypted with SECRET_KEY or a fallback, encrypted with SECRET_KEY.
                # One unreadable value stops the command and changes nothing.
                cursor.execute(f"SELECT id, {names} FROM {table}")
                for pk, *stored in cursor.fetchall():
                    fresh = [encrypt(decrypt(value)) if value else "" for value in stored]
                    if any(stored):
                        sets = ", ".join(f"{connection.ops.quote_name(c)} = %s"
                                         for c in _COLUMNS)
                        cursor.execute(f"UPDATE {table} SET {sets} WHERE id = %s",
                                       [*fresh, pk])
                        changed.append(pk)
                audit.record_command(
                    "rotatesecretkey", list(ApiKey.objects.filter(pk__in=changed)),
                    audit.CHANGE, "Re-encrypted the signing secrets with the new SECRET_KEY.")
        except SecretUnreadable as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"re-encrypted the signing secrets of {len(changed)} key(s)")
