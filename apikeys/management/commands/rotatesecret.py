"""``manage.py rotatesecret KEY [--require] [--grace SECONDS]``: new signing secret,
printed once; with ``--grace`` the previous one stays valid that long."""

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
        parser.add_argument("--grace", type=int, default=0, metavar="SECONDS",
                            help="keep accepting tokens signed with the previous secret "
                            "for this many seconds (default 0: refuse them at once)")

    def handle(self, *args: Any, **options: Any) -> None:
        row = ApiKey.objects.filter(key=options["key"]).first()
        if row is None:
            raise CommandError("no such key")
        if options["grace"] < 0:
            raise CommandError("--grace must be 0 or more seconds")
        secret = row.rotate_token_secret(options["grace"])
        if options["require"]:
            row.require_signed_tokens = True
        row.save(update_fields=[*ApiKey.ROTATION_FIELDS, "require_signed_tokens"])
        forget_cached(row.key)
        required = " Signed tokens are now required." if options["require"] else ""
        audit.record_command("rotatesecret", [row], audit.CHANGE,
                             f"Generated a new token signing secret.{required}")
        self.stdout.write(secret)
