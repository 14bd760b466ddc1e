"""App config for the PeerServer."""

from __future__ import annotations

from django.apps import AppConfig


class SignallingConfig(AppConfig):
    """PeerJS signalling: websocket consumer, HTTP routes, hub."""

    name = "signalling"
    verbose_name = "Signalling"

    def ready(self) -> None:
        """Register the system checks and the key-change events of the control plane."""
        from django.db.models.signals import post_delete, post_save

        from apikeys.models import ApiKey
        from signalling import checks  # noqa: F401

        post_save.connect(_key_changed, sender=ApiKey, dispatch_uid="peerhub-key-saved")
        post_delete.connect(_key_changed, sender=ApiKey, dispatch_uid="peerhub-key-deleted")


def _key_changed(sender: object, instance: object, **kwargs: object) -> None:
    """An API key was saved or deleted: every node re-reads it (after the commit)."""
    from django.db import transaction


    key = str(getattr(instance, "key", ""))
    transaction.on_commit(lambda: _announce([key]))


def _announce(keys: list[str]) -> None:
    """Send a key-change event; a control plane that is down is logged, not raised (the
    nodes' reconciliation will catch up)."""
    import logging

    from redis.exceptions import RedisError

    from signalling.control import keys_changed

    try:
        keys_changed(keys)
    except (RedisError, OSError) as exc:
        logging.getLogger(__name__).warning("could not announce a key change (%s)", exc)
