"""Keep tokens out of logs: PeerJS tokens travel in URLs.

The websocket handshake and ``{key}/ice`` carry ``token=`` in the query string, the 0.3.x
routes carry it as a path segment (``{key}/{id}/{token}/{action}``). :func:`redact_path`
replaces both with ``***`` wherever they appear in a line of text; the access log calls
it for every line and :class:`RedactTokensFilter` for every log record (message,
exception text and stack).
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from daphne.access import AccessLogGenerator

_LEGACY_ROUTE = re.compile(r"/([^/\s]+)/([^/\s]+)/([^/\s]+)/(id|offer|candidate|answer|leave)\b")


def _letter(c: str) -> str:
    """A pattern for ``c`` written plainly or percent-encoded (either case)."""
    return f"(?:{c}|%{ord(c):02x})"


#: ``token=VALUE`` as a query parameter (after ``?``, ``&`` or ``;``, or at the start of a
#: bare query string), its name possibly percent-encoded, its ``=`` too; the value runs
#: to the next separator, whitespace or quote.
_QUERY_TOKEN = re.compile(
    r"(^|[?&;\s\"'])(" + "".join(_letter(c) for c in "token") + r")(=|%3d)[^&;#\s\"']*",
    re.IGNORECASE)


def redact_path(text: str) -> str:
    """Replace every token in ``text`` with ``***``.

    Both places a PeerJS token travels are covered: a ``token=`` query parameter in any
    position (URL-encoded or not) and the token segment of 0.3.x
    ``{key}/{id}/{token}/{action}`` paths.
    """
    if "/" in text:
        text = _LEGACY_ROUTE.sub(r"/\1/\2/***/\4", text)
    if "=" in text or "%" in text:
        text = _QUERY_TOKEN.sub(r"\1\2\3***", text)
    return text


class RedactTokensFilter(logging.Filter):
    """A logging filter that redacts tokens from a record's message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg = record.getMessage()
            record.args = None
        record.msg = redact_path(str(record.msg))
        if record.exc_info and not record.exc_text:
            record.exc_text = _FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_path(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_path(record.stack_info)
        return True


_FORMATTER = logging.Formatter()


class RedactingAccessLog(AccessLogGenerator):
    """daphne's access log, with tokens redacted from request paths."""

    _second = -1  # the second whose timestamp text is in _stamp
    _stamp = ""

    def write_entry(self, host: Any, date: Any, request: Any, status: Any = None,
                    length: Any = None, ident: Any = None, user: Any = None) -> None:
        super().write_entry(host, date, redact_path(str(request)), status, length, ident,
                            user)

    def websocket(self, verb: str, path: str, client: tuple[str, int]) -> None:
        """A websocket line in the same format, cheaply (the front calls this on every
        connect and disconnect): the timestamp is formatted once per second, and the
        path of a websocket never holds a token (it has no query string here)."""
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._stamp = time.strftime("%d/%b/%Y:%H:%M:%S", time.localtime(now))
        self.stream.write(f'{client[0]}:{client[1]} - - [{self._stamp}] "{verb} {path}" - -\n')
