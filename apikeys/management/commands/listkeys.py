"""``manage.py listkeys``: every API key with its limits and open sessions."""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apikeys.live import open_session_counts
from apikeys.models import ApiKey
from apikeys.usage import with_totals

COLUMNS = ("key", "name", "state", "live", "sessions", "limit", "discovery", "origins",
           "last used")


def table(rows: list[tuple[str, ...]]) -> list[str]:
    """Left-aligned text columns, two spaces apart."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in rows]


class Command(BaseCommand):
    help = ("List API keys. 'live' counts open peer sessions recorded in the database: "
            "this command runs in its own process and cannot see a server's memory.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--active", action="store_true", help="only active keys")

    def handle(self, *args: Any, **options: Any) -> None:
        keys = with_totals(ApiKey.objects.order_by("name", "key"))
        if options["active"]:
            keys = keys.filter(active=True)
        live = open_session_counts()
        rows: list[tuple[str, ...]] = [COLUMNS]
        rows += [(
            k.key, k.name, "active" if k.active else "inactive", str(live.get(k.key, 0)),
            str(getattr(k, "session_count", 0)), str(k.concurrent_limit or "-"),
            "yes" if k.allow_discovery else "no", str(len(k.origin_list()) or "any"),
            k.last_used.strftime("%Y-%m-%d %H:%M") if k.last_used else "never",
        ) for k in keys]
        for line in table(rows):
            self.stdout.write(line)
        self.stdout.write(f"{len(rows) - 1} key(s). live = open sessions recorded in the "
                          "database (written within a second of a connect or close; a "
                          "crashed node's sessions are closed when it restarts).")
