"""App config for the PeerServer."""

from django.apps import AppConfig


class SignallingConfig(AppConfig):
    """PeerJS signalling: websocket consumer, HTTP routes, hub."""

    name = "signalling"
    verbose_name = "Signalling"

    def ready(self) -> None:
        """Register the system checks."""
        from signalling import checks  # noqa: F401
