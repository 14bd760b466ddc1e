"""Throttling the admin login: per client address and per user name.

Every failed login counts against the address it came from and the user name it tried.
When either reaches ``LOGIN_FAILURE_LIMIT`` (default 5) within ``LOGIN_FAILURE_WINDOW``
seconds (default 900, counted from the first failure), further login POSTs for that
address or that user name are answered ``429 Too Many Requests`` with ``Retry-After``
until the window ends, without checking the password (each check costs a password
hash, about a third of a second of CPU). A successful login clears both counters.

Counters live in Django's cache: Redis when ``REDIS_URL`` is set (so the limit holds
across the cluster), otherwise per process (with ``WORKERS=N`` each worker counts on
its own). The per-user limit also means anyone can lock a user name out for the window:
the address limit stops one address from doing it for long, not a botnet.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from hashlib import sha256
from typing import Any

from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.cache import cache
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.urls import reverse

logger = logging.getLogger(__name__)


def _limit() -> int:
    return int(settings.PEERHUB_LOGIN_FAILURE_LIMIT)


def _window() -> int:
    return int(settings.PEERHUB_LOGIN_FAILURE_WINDOW)


def _keys(kind: str, value: str) -> tuple[str, str]:
    digest = sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"login-fail:{kind}:{digest}", f"login-fail-start:{kind}:{digest}"


def _subjects(address: str, username: str) -> list[tuple[str, str]]:
    subjects = [("addr", address)]
    if username:
        subjects.append(("user", username.casefold()))
    return subjects


def note_failure(address: str, username: str) -> None:
    """Count one failed login for ``address`` and ``username``."""
    window = _window()
    for kind, value in _subjects(address, username):
        count_key, start_key = _keys(kind, value)
        if cache.add(count_key, 1, window):
            cache.set(start_key, time.time(), window)
        else:
            try:
                cache.incr(count_key)
            except ValueError:  # expired between add and incr
                cache.set(count_key, 1, window)
                cache.set(start_key, time.time(), window)


def clear(address: str, username: str) -> None:
    """Forget the failures of ``address`` and ``username`` (after a good login)."""
    for kind, value in _subjects(address, username):
        cache.delete_many(list(_keys(kind, value)))


def retry_after(address: str, username: str) -> int:
    """Seconds until a login from ``address`` for ``username`` is allowed; 0: now."""
    wait = 0
    for kind, value in _subjects(address, username):
        count_key, start_key = _keys(kind, value)
        count = cache.get(count_key) or 0
        if count >= _limit():
            started = float(cache.get(start_key) or time.time())
            wait = max(wait, int(started + _window() - time.time()) + 1)
    return wait


def _address(request: HttpRequest | None) -> str:
    return "" if request is None else str(request.META.get("REMOTE_ADDR", ""))


@receiver(user_login_failed, dispatch_uid="peerhub-login-failed")
def _on_failure(sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None,
                **kwargs: Any) -> None:
    username = str(credentials.get("username", ""))
    note_failure(_address(request), username)
    logger.warning("failed admin login from %s", _address(request))


@receiver(user_logged_in, dispatch_uid="peerhub-logged-in")
def _on_success(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    clear(_address(request), str(user.get_username()))


class LoginThrottleMiddleware:
    """Answer 429 to admin login POSTs from a throttled address or for a throttled user."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self._login_path: str | None = None

    def __call__(self, request: HttpRequest) -> HttpResponse:
        """Refuse before the password is checked; otherwise carry on."""
        if request.method == "POST":
            if self._login_path is None:
                self._login_path = reverse("admin:login")
            if request.path == self._login_path:
                wait = retry_after(_address(request), str(request.POST.get("username", "")))
                if wait:
                    logger.warning("throttled admin login from %s", _address(request))
                    minutes = (wait + 59) // 60
                    response = HttpResponse(
                        f"Too many failed logins. Try again in {minutes} minute(s).",
                        content_type="text/plain; charset=utf-8", status=429)
                    response["Retry-After"] = str(wait)
                    return response
        return self.get_response(request)
