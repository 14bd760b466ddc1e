"""``manage.py rotatesecret KEY [--require]``: new signing secret, printed once."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apikeys import audit
from apikeys.models import ApiKey
from apikeys.tenants import forget_cached


class Command(BaseCommand):
    help = "Generate a new token signing secret for KEY and print it (it is shown once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key")
        parser.add_argument("--require", action="store_true",
                            help="also require signed tokens for this key from now on")

    def handle(self, *args: Any, **options: Any) -> None:
        row = ApiKey.objects.filter(key=options["key"]).first()
        if row is None:
            raise CommandError("no such key")
        secret = row.rotate_token_secret()
        if options["require"]:
            row.require_signed_tokens = True
        row.save(update_fields=["token_secret", "require_signed_tokens"])
        forget_cached(row.key)
        required = " Signed tokens are now required." if options["require"] else ""
        audit.record_command("rotatesecret", [row], audit.CHANGE,
                             f"Generated a new token signing secret.{required}")
        self.stdout.write(secret)
