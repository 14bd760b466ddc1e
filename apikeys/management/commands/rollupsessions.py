"""``manage.py rollupsessions --rebuild``: recompute the hourly usage rollups."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from signalling.rollup import rebuild


class Command(BaseCommand):
    help = ("Recompute the hourly usage rollups (key totals, dashboard) from the peer "
            "session rows. The serving processes keep them up to date; this is for "
            "sessions written by other means (imports, repairs). History of pruned "
            "sessions is lost.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rebuild", action="store_true", help="replace every rollup row")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["rebuild"]:
            raise CommandError("nothing to do: pass --rebuild")
        self.stdout.write(f"rebuilt {rebuild()} hourly usage rows")
