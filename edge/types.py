"""ASGI type names shared by the edge's modules."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
#: The scope's ``asgi`` entry, shared by every connection (applications only read it).
ASGI_VERSION = {"version": "3.0", "spec_version": "2.3"}
