"""``LOG_FORMAT=json``: one JSON object per log line.

Each line holds ``time`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger`` and
``message``, then every extra field the call passed (``extra={"api_key": ...}``), then
``exception`` when there is one. The token-redacting filter runs before this formatter
in the handler, so ``message`` is already redacted.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson

#: Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {
    "message", "asctime", "taskName"}


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields of one line, in order."""
    fields: dict[str, Any] = {
        "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname,
        "logger": record.name,
        "message": record.getMessage(),
    }
    for name, value in vars(record).items():
        if name not in _STANDARD and not name.startswith("_"):
            fields.setdefault(name, value)
    return fields


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON (values that are not JSON become text)."""

    def format(self, record: logging.LogRecord) -> str:
        fields = record_fields(record)
        # exc_text first: the redacting filter has already formatted and cleaned it.
        if record.exc_text:
            fields["exception"] = record.exc_text
        elif record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            fields["stack"] = record.stack_info
        return orjson.dumps(fields, default=str).decode()
