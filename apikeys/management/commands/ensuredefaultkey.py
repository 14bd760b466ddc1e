"""``manage.py ensuredefaultkey``: make sure the default API key exists."""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from apikeys import audit
from apikeys.models import ApiKey
from apikeys.tenants import ensure_default_key


class Command(BaseCommand):
    help = "Create the default API key (PEERHUB_DEFAULT_KEY, normally 'peerjs') if missing."

    def handle(self, *args: Any, **options: Any) -> None:
        existed = ApiKey.objects.filter(key=settings.PEERHUB_DEFAULT_KEY).exists()
        row = ensure_default_key()
        if not existed:
            audit.record_command("ensuredefaultkey", [row], audit.ADDITION,
                                 "Created the default key.")
        state = "active" if row.active else "inactive"
        self.stdout.write(f"default key {row.key!r} is {state}")
