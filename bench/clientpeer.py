"""One Python peer of the client bench in its own process (``python -m bench.clientpeer``).

``sink``: registers, and on every data connection counts the messages; on the string
``"end"`` it answers ``{"got": count, "bytes": total}`` and starts counting again.
``send``: for each repetition opens a reliable ``binary`` connection to the sink, then
sends ``--small`` short strings and ``--large`` 1 MiB buffers (each run closed by
``"end"`` and its answer) and prints one JSON line per repetition with the open time,
the rates and the UDP receive-buffer drops of the machine during each run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from peerhub_client import DataConnection, Peer

END = "end"
SMALL = "0123456789"
LARGE_BYTES = 1024 * 1024
SNMP = Path("/proc/net/snmp")


def udp_rcvbuf_errors() -> int:
    """The machine's ``Udp: RcvbufErrors`` counter (datagrams dropped, buffer full)."""
    lines = [line.split() for line in SNMP.read_text().splitlines() if line.startswith("Udp:")]
    names, values = lines[0], lines[1]
    return int(values[names.index("RcvbufErrors")])


def count_messages(conn: DataConnection) -> None:
    """The sink's side: count, answer on ``"end"``."""
    count = total = 0

    def on_data(data: Any) -> None:
        nonlocal count, total
        if data == END:
            conn.send({"got": count, "bytes": total})
            count = total = 0
            return
        count += 1
        total += len(data)

    conn.on("data", on_data)


def make_peer(args: argparse.Namespace, peer_id: str | None) -> Peer:
    return Peer(peer_id, host=args.host, port=args.port, udp_receive_buffer=args.udp_buffer)


async def sink(args: argparse.Namespace) -> None:
    peer = make_peer(args, args.id)
    peer.on("connection", count_messages)
    await peer.ready()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until EOF
    peer.destroy()
    await peer.wait_closed()


async def timed_run(conn: DataConnection, payload: Any, n: int) -> dict[str, float]:
    """Send ``payload`` ``n`` times as fast as the channel takes it; wait for the count."""
    drops = udp_rcvbuf_errors()
    started = time.perf_counter()
    for _ in range(n):
        conn.send(payload)
        await conn.drain()
    conn.send(END)
    reply = await asyncio.wait_for(conn.recv(), 300)
    seconds = time.perf_counter() - started
    if reply.get("got") != n:
        raise RuntimeError(f"the sink counted {reply.get('got')} of {n} messages")
    return {"seconds": seconds, "drops": udp_rcvbuf_errors() - drops}


async def send(args: argparse.Namespace) -> None:
    peer = make_peer(args, None)
    await peer.ready()
    blob = os.urandom(LARGE_BYTES)
    try:
        for _ in range(args.reps):
            started = time.perf_counter()
            conn = await asyncio.wait_for(peer.connect(args.to, reliable=True), 30)
            open_ms = (time.perf_counter() - started) * 1000
            small = await timed_run(conn, SMALL, args.small)
            large = await timed_run(conn, blob, args.large)
            conn.close()
            print(json.dumps({
                "open_ms": open_ms,
                "small_rate": args.small / small["seconds"], "small_drops": small["drops"],
                "mb_per_s": args.large * LARGE_BYTES / 1e6 / large["seconds"],
                "large_drops": large["drops"],
            }), flush=True)  # fmt: skip
    finally:
        peer.destroy()
        await peer.wait_closed()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.clientpeer", description=__doc__)
    ap.add_argument("role", choices=["sink", "send"])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--id", help="the sink's id")
    ap.add_argument("--to", help="the sink to send to")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--small", type=int, default=5000)
    ap.add_argument("--large", type=int, default=20)
    ap.add_argument("--udp-buffer", type=int, default=4 * 1024 * 1024,
                    help="Peer(udp_receive_buffer=...); 262144 keeps aioice's own size")
    args = ap.parse_args(argv)
    asyncio.run(sink(args) if args.role == "sink" else send(args))


if __name__ == "__main__":
    main()
