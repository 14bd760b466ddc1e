"""The slow-drip phase: what a 256 KiB message costs the server when it trickles in.

On a fresh process of each server in turn, peer A sends peer B one 256 KiB PeerJS
message (a CANDIDATE with a long payload), and the server's CPU time is read from
``/proc`` around each delivery:

- **one write**: the whole frame in one ``send``;
- **slow drip**: the same frame in 10-byte writes, each followed by a short pause so
  that the server gets it as a read of its own (TCP_NODELAY);
- **pongs**: the same number of 10-byte writes, each a whole unsolicited pong frame
  (2 + 4 + 4 bytes) and no message: what that many reads cost when each is served on
  its own (the system calls and the event loop);
- **idle**: nothing sent for as long as the drip took: what the server spends anyway
  (timers, sweeps), which the drip's figure holds too and its ratio leaves out.

Two counts beside the times, which the machine's load does not move: the TCP segments
the drip took (the sender's ``tcpi_data_segs_out``: 26,216 if no write merged with the
next; fewer when the sender's congestion window, waiting for the server's delayed
ACKs, held writes back and the kernel sent them together), and the server's read
system calls during the drip beyond those of the idle window (``/proc/PID/io``).
The drip's CPU follows the segments far more than the reads: each segment is an skb
the server's kernel copies and frees when it is read (see :mod:`edge.trickle`).

Beside them, with no server at all, the **kernel floor**: the same writes read by a
bare reader thread in this process (non-blocking socket, epoll, ``SO_RCVLOWAT`` set to
what is missing, as the edge does), its thread's CPU against the same bytes in one
write. On loopback each 10-byte write stays a segment of its own in the receive queue
(it is a clone of the sender's unacknowledged buffer, which the kernel does not
coalesce), and reading them costs the reader's kernel about 0.2 us each however few
reads it makes: the ratio no server's reader can go below on this machine.

A reader that copies its whole buffer on every read makes the drip cost grow with the
square of the message size; one whose cost is linear in the bytes makes it about the
pongs plus the one write; a server that also waits before reading a socket again that
trickles makes it a few reads more than the one write.
"""

from __future__ import annotations

import asyncio
import json
import logging
import select
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import report, scenarios, servers, stats
from bench import wsproto as w
from bench.peers import Peer, Tally, Target, open_peer
from bench.procstat import cpu_seconds, read_calls

logger = logging.getLogger(__name__)

MESSAGE_SIZE = 256 * 1024
STEP = 10  # bytes per write
PAUSE = 100e-6  # seconds between writes: the server reads each one on its own
#: Writes per drip: the frame (a 64-bit length header, the masking key, the message).
WRITES = -(-(10 + 4 + MESSAGE_SIZE) // STEP)
#: Where ``tcpi_data_segs_out`` (u32) sits in Linux's ``struct tcp_info``, and the
#: bytes to ask for.
DATA_SEGS_OUT, TCP_INFO_SIZE = 156, 160
#: A 10-byte unsolicited client pong (4-byte payload, zero masking key).
PONG = w.client_frame(b"drip", w.OP_PONG)
#: peerhub refuses messages over MAX_MESSAGE_SIZE (64 KiB by default); the reference
#: accepts 100 MiB. The phase raises peerhub's limit for its own process only. Its key
#: watcher's database poll (every 1.5 s without Redis, 1-2 ms of CPU each, in a thread)
#: falls in the drip's window and the idle one alike, so the ratio subtracts it, but
#: it moved idle by +-2 ms between windows, as much as the target itself: the phase
#: polls once in ten minutes instead.
PEERHUB_ENV = {"MAX_MESSAGE_SIZE": str(2 * MESSAGE_SIZE), "KEY_WATCH_INTERVAL": "600000"}


@dataclass(slots=True)
class SlowDripResult:
    """Server CPU seconds of each repetition, per way of sending."""

    writes: int = 0  # 10-byte writes per drip
    one_write: list[float] = field(default_factory=list)
    drip: list[float] = field(default_factory=list)
    pongs: list[float] = field(default_factory=list)
    drip_wall: list[float] = field(default_factory=list)  # seconds each drip took
    idle: list[float] = field(default_factory=list)  # CPU over drip_wall, nothing sent
    #: the kernel floor (no server): a bare reader thread's CPU, one write and drip
    floor_one_write: list[float] = field(default_factory=list)
    floor_drip: list[float] = field(default_factory=list)
    segments: list[int] = field(default_factory=list)  # TCP data segments per drip
    reads: list[int] = field(default_factory=list)  # server reads per drip, over idle


def big_message(dst: str, size: int = MESSAGE_SIZE) -> bytes:
    """A CANDIDATE for ``dst`` of exactly ``size`` bytes of JSON text."""
    empty = scenarios.candidate_message(dst, 0)
    obj = json.loads(empty)
    obj["payload"]["pad"] = ""
    base = len(json.dumps(obj, separators=(",", ":")))
    obj["payload"]["pad"] = "x" * (size - base)
    data = json.dumps(obj, separators=(",", ":")).encode()
    assert len(data) == size
    return data


def chunks(data: bytes, step: int = STEP) -> list[bytes]:
    """``data`` cut into pieces of ``step`` bytes (the last may be shorter)."""
    return [data[i:i + step] for i in range(0, len(data), step)]


def send_paced(sock: socket.socket, pieces: list[bytes], pause: float) -> None:
    """Write each piece on its own, pausing ``pause`` seconds after each."""
    sleep = time.sleep
    for piece in pieces:
        sock.sendall(piece)
        sleep(pause)


def bare_reader_cpu(pieces: list[bytes], pause: float, timeout: float = 120.0) -> float:
    """CPU seconds of a bare reader thread (epoll, SO_RCVLOWAT at what is missing, capped
    at 64 KiB like the edge) that reads ``pieces``, written one by one on loopback."""
    total = sum(len(p) for p in pieces)
    with socket.create_server(("127.0.0.1", 0)) as srv:
        srv.settimeout(timeout)
        out: list[float] = []

        def read() -> None:
            conn, _ = srv.accept()
            with conn, select.epoll() as ep:
                conn.setblocking(False)
                ep.register(conn.fileno(), select.EPOLLIN)
                got = 0
                started = time.thread_time()
                while got < total:
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT,
                                    min(total - got, 65536))
                    if not ep.poll(timeout):
                        raise TimeoutError("the bare reader got nothing")
                    got += len(conn.recv(1 << 20))
                out.append(time.thread_time() - started)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        with socket.create_connection(srv.getsockname(), timeout=timeout) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            send_paced(sock, pieces, pause)
            reader.join(timeout)
    if not out:
        raise TimeoutError("the bare reader did not finish")
    return out[0]


def measure_floor(result: SlowDripResult, frame: bytes, reps: int) -> None:
    """The kernel floor, ``reps`` times: ``frame`` in one write, then in STEP bytes."""
    pieces = chunks(frame)
    for _ in range(reps):
        result.floor_one_write.append(bare_reader_cpu([frame], 0.0))
        result.floor_drip.append(bare_reader_cpu(pieces, PAUSE))


class RawSender:
    """A PeerJS websocket on a blocking socket, for paced writes from a thread."""

    def __init__(self, target: Target, peer_id: str, timeout: float = 20.0):
        self.sock = socket.create_connection((target.host, target.port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(target.request(peer_id, "tok-" + peer_id))
        frames: list[tuple[int, bytes]] = []
        parser = w.FrameParser(lambda op, payload: frames.append((op, payload)))
        buf = b""
        split = None
        while split is None:
            buf += self._recv()
            split = w.split_response(buf)
        head, rest = split
        w.check_switching(head)
        parser.feed(rest)
        while not frames:
            parser.feed(self._recv())
        if b'"OPEN"' not in frames[0][1]:
            raise ConnectionError(f"{peer_id}: expected OPEN, got {frames[0][1][:200]!r}")

    def segments_sent(self) -> int:
        """TCP data segments this socket has sent so far (Linux's TCP_INFO)."""
        info = self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_SIZE)
        return int.from_bytes(info[DATA_SEGS_OUT:DATA_SEGS_OUT + 4], sys.byteorder)

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed during the handshake")
        return data

    def send_paced(self, pieces: list[bytes], pause: float) -> None:
        """Write each piece on its own, pausing ``pause`` seconds after each."""
        send_paced(self.sock, pieces, pause)

    def close(self) -> None:
        """Drop the connection."""
        self.sock.close()


async def delivered(tally: Tally, timeout: float) -> None:
    """Wait until B has the message."""
    async with asyncio.timeout(timeout):
        await tally.done.wait()


async def cpu_of(pid: int, action: asyncio.Future[None] | None, tally: Tally,
                 expect: int, timeout: float) -> float:
    """Server CPU seconds from now until ``action`` is done and B has ``expect`` more."""
    tally.expect(expect)
    before = cpu_seconds(pid)
    if action is not None:
        await action
    await delivered(tally, timeout)
    return cpu_seconds(pid) - before


async def measure_server(srv: servers.Server, prefix: str, reps: int,
                         timeout: float = 120.0) -> SlowDripResult:
    """All three ways of sending, ``reps`` times each, on one server."""
    target = srv.target()
    tally = Tally()
    receiver: Peer = await open_peer(target, f"{prefix}-b", tally, 20.0)
    sender = await asyncio.to_thread(RawSender, target, f"{prefix}-a")
    frame = w.client_frame(big_message(f"{prefix}-b"))
    pieces = chunks(frame)
    assert len(pieces) == WRITES
    pongs = [PONG] * len(pieces)
    result = SlowDripResult(writes=len(pieces))
    try:
        for rep in range(reps):
            await scenarios.wait_idle(srv.name, srv.pid)
            one = asyncio.ensure_future(asyncio.to_thread(sender.sock.sendall, frame))
            result.one_write.append(await cpu_of(srv.pid, one, tally, 1, timeout))
            await scenarios.wait_idle(srv.name, srv.pid)
            started = time.perf_counter()
            segments, reads = sender.segments_sent(), read_calls(srv.pid)
            drip = asyncio.ensure_future(asyncio.to_thread(sender.send_paced, pieces, PAUSE))
            result.drip.append(await cpu_of(srv.pid, drip, tally, 1, timeout))
            result.drip_wall.append(time.perf_counter() - started)
            result.segments.append(sender.segments_sent() - segments)
            drip_reads = read_calls(srv.pid) - reads
            await scenarios.wait_idle(srv.name, srv.pid)
            pong = asyncio.ensure_future(asyncio.to_thread(sender.send_paced, pongs, PAUSE))
            result.pongs.append(await cpu_of(srv.pid, pong, tally, 0, timeout))
            await scenarios.wait_idle(srv.name, srv.pid)
            reads = read_calls(srv.pid)
            idle = asyncio.ensure_future(asyncio.sleep(result.drip_wall[-1]))
            result.idle.append(await cpu_of(srv.pid, idle, tally, 0, timeout))
            result.reads.append(drip_reads - (read_calls(srv.pid) - reads))
            logger.info("%s slow drip rep %d: one write %.1f ms, drip %.1f ms (%.1f s, "
                        "%d segments, %d reads over idle), pongs %.1f ms, idle %.1f ms",
                        srv.name, rep, result.one_write[-1] * 1e3, result.drip[-1] * 1e3,
                        result.drip_wall[-1], result.segments[-1], result.reads[-1],
                        result.pongs[-1] * 1e3, result.idle[-1] * 1e3)
    finally:
        sender.close()
        receiver.close()
    return result


async def measure(workdir: Path, prefix: str, reps: int) -> dict[str, SlowDripResult]:
    """A fresh process of peerhub and of peerjs-server in turn; results by server name."""
    out: dict[str, SlowDripResult] = {}
    var_dir = workdir / "peerhub"
    fresh = not (var_dir / "peerhub.sqlite3").exists()
    hub = servers.start_peerhub(var_dir, migrate=fresh, **PEERHUB_ENV)
    with servers.running(hub):
        out[hub.name] = await measure_server(hub, f"{prefix}d", reps)
    frame = w.client_frame(big_message(f"{prefix}d-b"))
    await asyncio.to_thread(measure_floor, out[hub.name], frame, reps)
    with servers.running(servers.start_peerjs(workdir)) as ref:
        out[ref.name] = await measure_server(ref, f"{prefix}d", reps)
    return out


# --- the table ----------------------------------------------------------------------


def rows(hub: SlowDripResult | None, ref: SlowDripResult | None) -> list[report.Row]:
    """The slow-drip rows: CPU of each way of sending, and the drip's own ratio."""
    nan = float("nan")

    def med(res: SlowDripResult | None, name: str) -> float:
        return stats.median(getattr(res, name)) * 1e3 if res is not None else nan

    def ms_row(metric: str, name: str) -> report.Row:
        a, b = med(hub, name), med(ref, name)
        return report.Row(metric, report.decimal(a, 1), report.decimal(b, 1),
                          report.times(stats.ratio(a, b)))

    def drip_ratio(res: SlowDripResult | None) -> str:
        if res is None:
            return report.NA
        net = [d - i for d, i in zip(res.drip, res.idle, strict=True)]
        return report.times(stats.ratio(stats.median(net) * 1e3, med(res, "one_write")))

    def floor() -> str:
        if hub is None or not hub.floor_drip:
            return report.NA
        drip, one = stats.median(hub.floor_drip), stats.median(hub.floor_one_write)
        return f"{report.times(stats.ratio(drip, one))} ({drip * 1e3:.1f} / {one * 1e3:.2f} ms)"

    def count_row(metric: str, name: str) -> report.Row:
        def count(res: SlowDripResult | None) -> float:
            values = getattr(res, name) if res is not None else None
            return float(stats.median(values)) if values else nan
        a, b = count(hub), count(ref)
        return report.Row(metric, report.decimal(a, 0), report.decimal(b, 0),
                          report.times(stats.ratio(a, b)))

    writes = WRITES
    kib = MESSAGE_SIZE // 1024
    return [
        ms_row(f"slow drip: one {kib} KiB message in {writes:,} writes of {STEP} bytes, "
               "server CPU ms (lower is better)", "drip"),
        ms_row("  the same message in one write, server CPU ms", "one_write"),
        ms_row(f"  {writes:,} writes of {STEP} bytes that are whole pongs, server CPU ms",
               "pongs"),
        ms_row("  idle for as long as the drip took, server CPU ms", "idle"),
        report.Row("  (slow drip - idle) / one write (issue 11 target: at most 2)",
                   drip_ratio(hub), drip_ratio(ref), "—"),
        count_row(f"  TCP segments per drip (the sender's; {writes:,} if no write merged)",
                  "segments"),
        count_row("  server read system calls per drip, over idle", "reads"),
        report.Row("  kernel floor, no server: a bare reader (epoll, SO_RCVLOWAT) of the same "
                   "writes, drip / one write", floor(), floor(), "—"),
    ]
