"""App config for API keys (tenants)."""

from django.apps import AppConfig


class ApiKeysConfig(AppConfig):
    """API keys: each one is a tenant with its own peer namespace and limits."""

    name = "apikeys"
    verbose_name = "API keys"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Connect the admin login throttle's signal handlers."""
        from apikeys import loginthrottle  # noqa: F401
