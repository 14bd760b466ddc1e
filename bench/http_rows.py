"""The HTTP rows: ``GET {key}/id`` per second (new connections and kept-alive) and the
whole join of a client without an id (``GET {key}/id``, then the websocket until OPEN).

The client is a bare asyncio protocol, as the websocket peers are: the generator must
cost less than the servers it drives. Both servers run side by side in phase 1; the
repetitions alternate between them like the other rows of that phase.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bench import report, stats
from bench.peers import Peer, Tally, Target, close_all, open_peer
from bench.procstat import CpuMeter

logger = logging.getLogger(__name__)

CONCURRENCY = 50
TIMEOUT = 20.0


class HttpFailed(ConnectionError):
    """A request got no complete 200 answer."""


@dataclass(slots=True)
class HttpSample:
    """One repetition of one HTTP row."""

    rate: float
    p50_ms: float
    done: int
    failures: int
    server_cpu: float


def id_request(target: Target, keep_alive: bool) -> bytes:
    """A PeerJS 1.5.5-style ``GET {path}{key}/id`` request."""
    stamp = time.time_ns()
    conn = "keep-alive" if keep_alive else "close"
    return (f"GET {target.mount}{target.key}/id?ts={stamp}&version=1.5.5 HTTP/1.1\r\n"
            f"Host: {target.host}:{target.port}\r\nConnection: {conn}\r\n"
            "Accept: */*\r\n\r\n").encode()


def parse_response(buffer: bytes) -> tuple[int, bytes, int] | None:
    """(status, body, bytes used) of the first complete response in ``buffer``, or None.

    Only ``Content-Length`` bodies are understood (both servers send one on this route).
    """
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buffer[:end].split(b"\r\n")
    status = int(head[0].split(b" ", 2)[1])
    length = 0
    for line in head[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if len(buffer) < end + 4 + length:
        return None
    return status, buffer[end + 4:end + 4 + length], end + 4 + length


class HttpClient(asyncio.Protocol):
    """One HTTP/1.1 connection that sends a request and waits for its answer."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = b""
        self._answer: asyncio.Future[bytes] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        parsed = parse_response(self._buffer)
        if parsed is None or self._answer is None or self._answer.done():
            return
        status, body, used = parsed
        self._buffer = self._buffer[used:]
        if status == 200:
            self._answer.set_result(body)
        else:
            self._answer.set_exception(HttpFailed(f"status {status}"))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(HttpFailed("connection closed"))

    async def ask(self, request: bytes) -> bytes:
        """Send ``request``; return the body of its 200 answer."""
        assert self.transport is not None
        self._answer = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self._answer

    def close(self) -> None:
        """Drop the connection."""
        if self.transport is not None:
            self.transport.close()


async def connect(target: Target) -> HttpClient:
    """A new connection to ``target``."""
    _, client = await asyncio.get_running_loop().create_connection(
        HttpClient, target.host, target.port)
    return client


async def fetch_id_once(target: Target) -> str:
    """``GET {key}/id`` on a new connection, closed afterwards."""
    client = await connect(target)
    try:
        return (await client.ask(id_request(target, keep_alive=False))).decode()
    finally:
        client.close()


Job = Callable[[int], Awaitable[None]]


async def measure(target: Target, pid: int, total: int, job_for: Callable[[], Job]
                  ) -> HttpSample:
    """Run ``total`` jobs, ``CONCURRENCY`` at a time; one ``job_for()`` per worker."""
    latencies: list[float] = []
    failures = 0
    counter = iter(range(total))

    async def worker() -> None:
        nonlocal failures
        job = job_for()
        for n in counter:
            start = time.perf_counter()
            try:
                async with asyncio.timeout(TIMEOUT):
                    await job(n)
            except (OSError, TimeoutError) as exc:
                failures += 1
                logger.debug("%s: request failed: %s", target.name, exc)
                continue
            latencies.append(time.perf_counter() - start)

    meter = CpuMeter(pid)
    meter.begin()
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    elapsed = time.perf_counter() - start
    meter.end()
    if failures:
        logger.warning("%s: %d of %d HTTP jobs failed", target.name, failures, total)
    return HttpSample(len(latencies) / elapsed, stats.median(latencies) * 1000,
                      len(latencies), failures, meter.cpu)


async def ids_new_connections(target: Target, pid: int, total: int) -> HttpSample:
    """``GET {key}/id``, each on a new connection."""

    def job_for() -> Job:
        async def job(n: int) -> None:
            await fetch_id_once(target)
        return job

    return await measure(target, pid, total, job_for)


async def ids_kept_alive(target: Target, pid: int, total: int) -> HttpSample:
    """``GET {key}/id`` on ``CONCURRENCY`` kept-alive connections."""
    clients: list[HttpClient] = []

    def job_for() -> Job:
        holder: list[HttpClient] = []

        async def job(n: int) -> None:
            if not holder or holder[0].transport is None or holder[0].transport.is_closing():
                holder[:] = [await connect(target)]
                clients.append(holder[0])
            await holder[0].ask(id_request(target, keep_alive=True))
        return job

    try:
        return await measure(target, pid, total, job_for)
    finally:
        for client in clients:
            client.close()


async def joins(target: Target, pid: int, total: int) -> HttpSample:
    """The join of a client without an id: ``GET {key}/id``, then the websocket to OPEN."""
    tally = Tally()
    peers: list[Peer] = []

    def job_for() -> Job:
        async def job(n: int) -> None:
            peer_id = await fetch_id_once(target)
            peers.append(await open_peer(target, peer_id, tally, TIMEOUT))
        return job

    try:
        return await measure(target, pid, total, job_for)
    finally:
        close_all(peers)


#: (row label, scenario) in table order.
SCENARIOS: tuple[tuple[str, Callable[[Target, int, int], Awaitable[HttpSample]]], ...] = (
    ("GET {key}/id per second, new connection each", ids_new_connections),
    ("GET {key}/id per second, kept-alive connections", ids_kept_alive),
    ("joins per second without an id (GET {key}/id, then websocket to OPEN)", joins),
)


async def run_rows(targets: dict[str, tuple[Target, int]], reps: int, requests: int,
                   joins_per_rep: int, settle: Callable[[], Awaitable[None]]
                   ) -> dict[str, dict[str, list[HttpSample]]]:
    """Every HTTP scenario on every server, ``reps`` times, alternating the order.

    ``targets`` maps a server's name to its target and pid; returns
    ``{label: {server name: samples}}``.
    """
    out: dict[str, dict[str, list[HttpSample]]] = {}
    names = list(targets)
    for label, scenario in SCENARIOS:
        count = joins_per_rep if scenario is joins else requests
        out[label] = {name: [] for name in names}
        for rep in range(reps + 1):  # the first round warms both up and is not kept
            for name in (names if rep % 2 == 0 else names[::-1]):
                target, pid = targets[name]
                sample = await scenario(target, pid, count)
                logger.info("%s %s rep %d: %.0f/s p50 %.1f ms (%d failed)", name, label, rep,
                            sample.rate, sample.p50_ms, sample.failures)
                if rep > 0:
                    out[label][name].append(sample)
                await settle()
    return out


def table_rows(samples: dict[str, dict[str, list[HttpSample]]], hub: str, ref: str
               ) -> list[report.Row]:
    """One row per HTTP scenario (rate, with its p50 latency), and the ratio."""
    rows = []
    for label, per_server in samples.items():
        a, b = per_server.get(hub, []), per_server.get(ref, [])
        ra, rb = stats.median([s.rate for s in a]), stats.median([s.rate for s in b])
        fails = sum(s.failures for s in a) + sum(s.failures for s in b)
        suffix = f"; {fails} failed" if fails else ""
        rows.append(report.Row(
            f"{label} ({CONCURRENCY} in flight{suffix})",
            f"{report.count(ra)} (p50 {report.decimal(_p50(a), 1)} ms)",
            f"{report.count(rb)} (p50 {report.decimal(_p50(b), 1)} ms)",
            report.times(stats.ratio(ra, rb))))
    return rows


def _p50(samples: list[HttpSample]) -> float:
    return stats.median([s.p50_ms for s in samples])


async def _alone(requests: int, joins_per_rep: int, reps: int) -> None:
    """Only the HTTP rows, both servers side by side (``python -m bench.http_rows``)."""
    import tempfile
    from pathlib import Path

    from bench import servers
    from bench.scenarios import wait_idle

    with tempfile.TemporaryDirectory(prefix="peerhub-bench-http-") as tmp:
        ref = servers.start_peerjs(Path(tmp))
        hub = servers.start_peerhub(Path(tmp) / "peerhub")
        with servers.running_all([ref, hub]):
            procs = {"peerhub": hub, "peerjs-server": ref}

            async def settle() -> None:
                for name, srv in procs.items():
                    await wait_idle(name, srv.pid)

            samples = await run_rows({n: (s.target(), s.pid) for n, s in procs.items()},
                                     reps, requests, joins_per_rep, settle)
    headers = ["metric (median of repetitions)", "peerhub", "peerjs-server 1.0.2",
               "peerhub / peerjs"]
    print(report.markdown_table(headers, table_rows(samples, "peerhub", "peerjs-server")))


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=_alone.__doc__)
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--joins", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    from bench.servers import raise_open_files_limit

    raise_open_files_limit()
    asyncio.run(_alone(args.requests, args.joins, args.reps))
