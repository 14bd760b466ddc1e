"""``manage.py minttoken KEY PEER_ID``: mint a signed PeerJS token (for tests and ops)."""

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apikeys.models import ApiKey
from signalling.tokens import mint_token


class Command(BaseCommand):
    help = "Print a signed token for PEER_ID under KEY, valid for --ttl seconds."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key")
        parser.add_argument("peer_id")
        parser.add_argument("--ttl", type=int, default=3600)

    def handle(self, *args: Any, **options: Any) -> None:
        row = ApiKey.objects.filter(key=options["key"]).first()
        if row is None or not row.token_secret:
            raise CommandError("no such key, or it has no signing secret yet")
        expiry = int(time.time()) + options["ttl"]
        self.stdout.write(mint_token(row.token_secret, row.key, options["peer_id"], expiry))
