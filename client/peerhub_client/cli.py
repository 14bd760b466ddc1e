"""``peerhub-bot {echo,filedrop} --host H --port P …``: run a bot until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .bots.echo import EchoBot
from .bots.filedrop import DEFAULT_MAX_BYTES, FileDropBot, FileStore
from .errors import PeerError
from .peer import Peer

__all__ = ["main"]

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="peerhub-bot", description=__doc__)
    bots = parser.add_subparsers(dest="bot", required=True)
    echo = bots.add_parser("echo", help="echo every message and every call back")
    _add_peer_options(echo)
    drop = bots.add_parser("filedrop", help="store files peers send, serve them back")
    _add_peer_options(drop)
    drop.add_argument("--dir", required=True, type=Path, help="directory for the files")
    drop.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES, help="largest file")
    return parser


def _add_peer_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--path", default="/")
    parser.add_argument("--key", default="peerjs")
    parser.add_argument("--id", default=None, help="peer id (default: ask the server)")
    parser.add_argument("--token", default=None, help="token (default: random)")
    parser.add_argument("--secure", action="store_true", help="use https/wss")
    parser.add_argument(
        "--ice-server", action="append", default=[], metavar="URL",
        help="STUN/TURN url (repeatable); default none",
    )  # fmt: skip
    parser.add_argument(
        "-v", "--verbose", action="count", default=0,
        help="-v: the client's info lines, -vv: its debug lines, -vvv: aiortc's and aioice's too",
    )  # fmt: skip


def peer_from_args(args: argparse.Namespace) -> Peer:
    config = {"iceServers": [{"urls": url} for url in args.ice_server]}
    return Peer(
        args.id, host=args.host, port=args.port, path=args.path, key=args.key,
        secure=args.secure, token=args.token, config=config, reconnect=True,
    )  # fmt: skip


def attach_bot(args: argparse.Namespace, peer: Peer) -> object:
    if args.bot == "echo":
        return EchoBot(peer)
    return FileDropBot(peer, FileStore(args.dir, args.max_bytes))


async def run(args: argparse.Namespace, on_open: Callable[[str], Any] = print) -> int:
    peer = peer_from_args(args)
    attach_bot(args, peer)
    peer.on("open", lambda peer_id: on_open(peer_id))
    _stop_on_signals(peer)
    try:
        await peer.ready()
    except PeerError as exc:
        print(f"error: {exc.type.value}: {exc.message}", file=sys.stderr)
        return 1
    await peer.wait_closed()  # reconnects by itself until SIGINT/SIGTERM destroys it
    return 0


def _stop_on_signals(peer: Peer) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, peer.destroy)


def _print_flushed(text: str) -> None:
    print(text, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    return asyncio.run(run(args, on_open=_print_flushed))


def configure_logging(verbose: int) -> None:
    """Warnings from everything; ``-v``/``-vv`` lower only the client's own level."""
    everything = logging.DEBUG if verbose > 2 else logging.WARNING
    logging.basicConfig(level=everything, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    own = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING
    logging.getLogger(__package__ or "peerhub_client").setLevel(own)
