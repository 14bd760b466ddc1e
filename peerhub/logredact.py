"""Keep tokens out of logs: the 0.3.x routes carry the PeerJS token in the URL path."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from daphne.access import AccessLogGenerator

_LEGACY_ROUTE = re.compile(r"/([^/\s]+)/([^/\s]+)/([^/\s]+)/(id|offer|candidate|answer|leave)\b")


def redact_path(text: str) -> str:
    """Replace the token segment of ``{key}/{id}/{token}/{action}`` paths with ``***``."""
    return _LEGACY_ROUTE.sub(r"/\1/\2/***/\4", text)


class RedactTokensFilter(logging.Filter):
    """A logging filter that redacts tokens from a record's message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg = record.getMessage()
            record.args = None
        record.msg = redact_path(str(record.msg))
        return True


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
