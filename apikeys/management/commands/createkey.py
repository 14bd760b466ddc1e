"""``manage.py createkey NAME``: create an API key (tenant) and print its key string."""

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apikeys import audit
from apikeys.forms import normalise_origin
from apikeys.models import ApiKey


class Command(BaseCommand):
    help = "Create an API key and print it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--key", help="the key string (default: random)")
        parser.add_argument("--limit", type=int, default=0, help="concurrent peer limit")
        parser.add_argument("--discovery", action="store_true", help="allow GET .../peers")
        parser.add_argument("--origin", action="append", default=[],
                            help="an allowed origin (repeatable; none means any)")
        parser.add_argument("--rate", type=int, default=0, help="messages/s per peer")
        parser.add_argument("--queue", type=int, default=0, help="offline queue bound")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            origins = [normalise_origin(o) for o in options["origin"]]
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        fields: dict[str, Any] = {
            "name": options["name"], "concurrent_limit": options["limit"],
            "allow_discovery": options["discovery"],
            "allowed_origins": "\n".join(origins),
            "rate_limit": options["rate"], "queue_limit": options["queue"],
        }
        if options["key"]:
            fields["key"] = options["key"]
        row = ApiKey(**fields)
        try:
            row.full_clean()
        except ValidationError as exc:
            raise CommandError("; ".join(
                f"{field}: {' '.join(errors)}" for field, errors in exc.message_dict.items()
            )) from exc
        row.save()
        audit.record_command("createkey", [row], audit.ADDITION,
                             f"Created with concurrent limit {row.concurrent_limit}.")
        self.stdout.write(row.key)
