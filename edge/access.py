"""The access log: one line per HTTP request and per websocket connect and disconnect.

The format is daphne's (``client:port - - [date] "VERB target" status length``), and every
target passes through :func:`peerhub.logredact.redact_path` (tokens in 0.3.x paths).

Lines written in one turn of the event loop go out in one write at its end: with
``PYTHONUNBUFFERED`` (containers set it) every line was a system call of its own, two per
websocket, a few per cent of the server's CPU in a connection burst.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import TextIO

from peerhub.logredact import redact_path

#: Redacted websocket paths remembered (any path may be asked for: the memo is bounded).
MAX_PATHS = 256


class AccessLog:
    """Writes access lines to a stream (stdout by default)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self._pending: list[str] = []  # lines of this loop turn, not written yet
        self._loop: asyncio.AbstractEventLoop | None = None
        self._second = -1  # the second whose timestamp text is in _stamp
        self._stamp = ""
        #: websocket paths as logged (redacted): one or a few paths serve every socket
        self._paths: dict[str, str] = {}

    def _now(self) -> str:
        now = int(time.time())
        if now != self._second:  # formatted once per second: this runs per request
            self._second = now
            self._stamp = time.strftime("%d/%b/%Y:%H:%M:%S", time.localtime(now))
        return self._stamp

    def _emit(self, line: str) -> None:
        loop = self._loop
        if loop is None or not loop.is_running():
            try:
                loop = self._loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop (a script, a test): at once
                self.stream.write(line)
                return
        if not self._pending:
            loop.call_soon(self.flush)
        self._pending.append(line)

    def flush(self) -> None:
        """Write the lines still pending (scheduled for the next loop turn by the first)."""
        lines, self._pending = self._pending, []
        if lines:
            self.stream.write("".join(lines))

    def request(self, client: tuple[str, int], method: str, target: str, status: int | None,
                length: int | None) -> None:
        """One HTTP request and its outcome (``status`` None: no response was sent)."""
        self._emit(f'{client[0]}:{client[1]} - - [{self._now()}] '
                   f'"{method} {redact_path(target)}" {status or "-"} '
                   f'{length if length is not None else "-"}\n')

    def websocket(self, verb: str, path: str, client: tuple[str, int]) -> None:
        """A websocket event: ``WSCONNECT``, ``WSDISCONNECT`` or ``WSREJECT``."""
        shown = self._paths.get(path)
        if shown is None:  # redacted once per path, not twice per socket
            if len(self._paths) >= MAX_PATHS:
                self._paths.clear()
            shown = self._paths[path] = redact_path(path)
        line = f'{client[0]}:{client[1]} - - [{self._now()}] "{verb} {shown}" - -\n'
        if self._pending:  # two per socket: the flush of this loop turn is scheduled
            self._pending.append(line)
        else:
            self._emit(line)
