"""The audit trail: who changed which key, what, when and from where.

Every record is a Django admin ``LogEntry``, so it shows in the admin's *Recent actions*
and in each key's *History*. Changes made in the admin are recorded under the staff user
with the client address; management commands are recorded under the inactive system
user :data:`SYSTEM_USERNAME`, with the operating-system user and host that ran them.
"""

from __future__ import annotations

import getpass
import json
import logging
import socket
from collections.abc import Sequence
from typing import Any

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.auth import get_user_model
from django.db.models import Model
from django.http import HttpRequest

logger = logging.getLogger(__name__)

SYSTEM_USERNAME = "peerhub-system"
__all__ = ["ADDITION", "CHANGE", "DELETION", "SYSTEM_USERNAME", "readable", "record",
           "record_admin", "record_command", "system_user"]


def readable(message: Any) -> str:
    """A change message as text (Django's JSON list form is rendered as Django does)."""
    if isinstance(message, list):
        return LogEntry(change_message=json.dumps(message)).get_change_message()
    return str(message)


def request_address(request: HttpRequest) -> str:
    """The client address of an admin request (after any trusted proxy headers)."""
    return str(request.META.get("REMOTE_ADDR") or "unknown address")


def record(user_id: int, objects: Sequence[Model], flag: int, what: str) -> None:
    """One LogEntry per object, each with the text ``what``."""
    if objects:
        LogEntry.objects.log_actions(user_id=user_id, queryset=list(objects),
                                     action_flag=flag, change_message=what[:2000])


def record_admin(request: HttpRequest, objects: Sequence[Model], flag: int,
                 what: Any) -> None:
    """Record a change made in the admin by ``request.user``, with its address."""
    record(request.user.pk, objects, flag,  # type: ignore[arg-type]
           f"{readable(what) or 'No fields changed.'} From {request_address(request)}.")


def system_user() -> Any:
    """The inactive user that management commands are recorded under (made once)."""
    user, created = get_user_model().objects.get_or_create(
        username=SYSTEM_USERNAME, defaults={"is_active": False})
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def command_origin() -> str:
    """``user@host`` of the process running a management command."""
    try:
        who = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid
        who = "unknown user"
    return f"{who}@{socket.gethostname()}"


def record_command(command: str, objects: Sequence[Model], flag: int, what: str) -> None:
    """Record a change made by ``manage.py command``."""
    record(system_user().pk, objects, flag,
           f"{what} By manage.py {command}, run by {command_origin()}.")
