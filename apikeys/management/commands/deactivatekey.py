"""``manage.py deactivatekey KEY [KEY ...]``: switch keys off and disconnect their peers."""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apikeys import audit
from apikeys.lifecycle import UnknownKey, deactivate_key


class Command(BaseCommand):
    help = ("Deactivate API keys: new connections get INVALID-KEY and the keys' live peers "
            "are disconnected by the serving processes within a few seconds.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("keys", nargs="+", metavar="KEY", help="a key string")

    def handle(self, *args: Any, **options: Any) -> None:
        unknown = []
        for key in options["keys"]:
            try:
                row = deactivate_key(key)
            except UnknownKey:
                unknown.append(key)
                continue
            audit.record_command("deactivatekey", [row], audit.CHANGE,
                                 "Deactivated; live peers disconnected.")
            self.stdout.write(f"deactivated {row.key!r} ({row.name})")
        if len(unknown) < len(options["keys"]):
            within = settings.PEERHUB_KEY_WATCH_MS / 1000 + settings.PEERHUB_KEY_CACHE_SECONDS
            self.stdout.write(f"live peers of deactivated keys are disconnected within "
                              f"about {within:g} s")
        if unknown:
            raise CommandError(f"no such key: {', '.join(repr(k) for k in unknown)}")
