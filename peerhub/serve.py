"""Start daphne with peerhub's settings: ``python -m peerhub.serve``.

The daphne options that matter to a PeerServer come from the same environment as the
rest: address and port, a listen backlog large enough for connection bursts, websocket
pings sized from ALIVE_TIMEOUT (dead sockets are closed and their ids freed within it),
no daphne-side socket lifetime limit, and MAX_MESSAGE_SIZE as the frame limit (a larger
frame is closed with code 1009 by the consumer).
"""

from __future__ import annotations

import math
import os
import sys

from peerhub.env import env_bool, env_int, env_str


def daphne_argv() -> list[str]:
    """The daphne command line for the current environment."""
    host = env_str("HOST", "0.0.0.0")
    port = env_int("PORT", 9000)
    backlog = env_int("LISTEN_BACKLOG", 4096, minimum=1)
    alive_ms = env_int("ALIVE_TIMEOUT", 60000, minimum=100)
    max_size = env_int("MAX_MESSAGE_SIZE", 65536, minimum=1024)
    half = max(1, math.ceil(alive_ms / 2000))  # daphne takes whole seconds
    # The consumer closes frames over MAX_MESSAGE_SIZE with 1009; daphne's own limit,
    # which drops the TCP connection, only bounds memory for frames far beyond it.
    hard_limit = max_size * 4
    interface = host.replace(":", r"\:")
    return [
        "-e", f"tcp:port={port}:interface={interface}:backlog={backlog}",
        "--ping-interval", str(half),
        "--ping-timeout", str(half),
        "--websocket_timeout", "-1",
        "--websocket-max-message-size", str(hard_limit),
        "--websocket-max-frame-size", str(hard_limit),
        "--application-close-timeout", "5",
        "-v", env_str("DAPHNE_VERBOSITY", "1"),
        *(["--proxy-headers"] if env_bool("PROXY_HEADERS", False) else []),
        "peerhub.asgi:application",
    ]


def use_uvloop() -> bool:
    """Install uvloop's event loop policy when asked to (UVLOOP=true) and available.

    It must happen before daphne creates its event loop at import.
    """
    if not env_bool("UVLOOP", False):
        return False
    try:
        import uvloop
    except ImportError:
        print("peerhub: UVLOOP=true but uvloop is not installed; using asyncio", flush=True)
        return False
    uvloop.install()
    return True


def main() -> None:
    """Run daphne in this process."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peerhub.settings")
    use_uvloop()
    import daphne.cli
    from daphne.cli import CommandLineInterface

    from peerhub.logredact import RedactingAccessLog

    daphne.cli.AccessLogGenerator = RedactingAccessLog

    argv = daphne_argv()
    print(f"peerhub: serving on {env_str('HOST', '0.0.0.0')}:{env_int('PORT', 9000)}",
          flush=True)
    CommandLineInterface().run(argv)
    sys.exit(0)


if __name__ == "__main__":
    main()
