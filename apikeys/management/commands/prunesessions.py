"""``manage.py prunesessions --older-than DAYS``: delete old closed peer sessions."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from signalling.retention import cutoff, prune


class Command(BaseCommand):
    help = "Delete closed peer sessions that ended more than DAYS days ago (live ones stay)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--older-than", type=float, required=True, metavar="DAYS",
                            dest="days", help="age in days (fractions allowed)")
        parser.add_argument("--dry-run", action="store_true", help="only count them")

    def handle(self, *args: Any, **options: Any) -> None:
        days: float = options["days"]
        if days < 0:
            raise CommandError("--older-than must not be negative")
        before = cutoff(timezone.now(), days)
        if options["dry_run"]:
            self.stdout.write(f"would delete {prune(before, dry_run=True)} closed sessions "
                              f"older than {days:g} days")
            return
        deleted = prune(before)
        self.stdout.write(f"deleted {deleted} closed sessions older than {days:g} days")
