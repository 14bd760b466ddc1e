"""``Peer(debug=N)``: the client's own log lines on stderr, without any logging set-up.

The levels are PeerJS's: 1 errors, 2 warnings too, 3 everything. The lines come from
the ``peerhub_client`` loggers only (not aiortc's or aioice's). If the application has
configured logging (the root logger has a handler), its handlers print them and no
handler is added here.
"""

from __future__ import annotations

import logging
import sys

__all__ = ["LEVELS", "enable_debug_logging"]

LEVELS = {1: logging.ERROR, 2: logging.WARNING, 3: logging.DEBUG}
PACKAGE = __package__ or "peerhub_client"


class _DebugHandler(logging.StreamHandler):
    """Marks the handler this module added, so it is added once."""


def enable_debug_logging(debug: int) -> None:
    """Show the client's log lines down to PeerJS debug level ``debug`` (1-3)."""
    level = LEVELS.get(max(1, min(debug, 3)))
    logger = logging.getLogger(PACKAGE)
    if level is None:
        return
    if logger.level == logging.NOTSET or level < logger.level:
        logger.setLevel(level)
    if logging.getLogger().handlers:
        return  # the application prints logs already
    if not any(isinstance(h, _DebugHandler) for h in logger.handlers):
        handler = _DebugHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("PeerJS: %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
