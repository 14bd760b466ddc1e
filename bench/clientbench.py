"""The client phase: data-channel speed of the Python client next to Chromium's.

Through one peerhub on loopback, a sender opens a reliable ``binary`` connection to a
sink, sends 5,000 short strings and then 20 messages of 1 MiB, each run closed by an
``"end"`` the sink answers with its count. Paths: Python → Python (each peer its own
process, as bots run; once with the client's UDP receive buffer and once with
aioice's own 256 KiB), browser → Python and browser → browser (Chromium with PeerJS
1.5.5, one page per peer). Per repetition: the time to open the connection, small
messages per second, MB/s of the 1 MiB messages, and the UDP datagrams the kernel
dropped for a full receive buffer during each run (``RcvbufErrors`` in
``/proc/net/snmp``, machine-wide, so other traffic can add to it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import report, servers, stats
from bench.clientpeer import udp_rcvbuf_errors

logger = logging.getLogger(__name__)

PY_PY = "Python → Python"
PY_PY_SMALL_BUFFER = "Python → Python, aioice's 256 KiB buffer"
BROWSER_PY = "browser → Python"
BROWSER_BROWSER = "browser → browser"
PATHS = (PY_PY, PY_PY_SMALL_BUFFER, BROWSER_PY, BROWSER_BROWSER)
AIOICE_BUFFER = 262_144


@dataclass(frozen=True)
class ClientSample:
    """One repetition on one path."""

    open_ms: float
    small_rate: float
    small_drops: int
    mb_per_s: float
    large_drops: int


@dataclass
class ClientResult:
    """Samples per path, and the sizes they were taken with."""

    small: int
    large: int
    samples: dict[str, list[ClientSample]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


BENCH_JS = r"""
window.cb = {
  async peer(options) {
    const p = new Peer(undefined, options);
    await new Promise((resolve, reject) => { p.on('open', resolve); p.on('error', reject); });
    return p;
  },
  async sink(options) {
    const p = await cb.peer(options);
    p.on('connection', conn => {
      let count = 0, bytes = 0;
      conn.on('data', d => {
        if (d === 'end') { conn.send({got: count, bytes}); count = bytes = 0; return; }
        count++; bytes += (d.byteLength ?? d.length);
      });
    });
    window.sinkPeer = p;
    return p.id;
  },
  async sender(options) { window.sendPeer = await cb.peer(options); },
  async open(remote) {
    const t0 = performance.now();
    const conn = sendPeer.connect(remote, {reliable: true});
    await new Promise((resolve, reject) => {
      conn.on('open', resolve); conn.on('error', reject);
      setTimeout(() => reject(new Error('connection did not open')), 30000);
    });
    window.conn = conn;
    return performance.now() - t0;
  },
  async run(kind, n) {
    const payload = kind === 'small' ? '0123456789' : t.pattern(1 << 20, 1);
    const reply = new Promise(resolve => conn.once('data', resolve));
    const t0 = performance.now();
    for (let i = 0; i < n; i++) conn.send(payload);
    conn.send('end');
    const got = await reply;
    return {seconds: (performance.now() - t0) / 1000, got: got.got};
  },
  close() { conn.close(); },
};
"""


class Sink:
    """A ``python -m bench.clientpeer sink`` process."""

    def __init__(self, proc: asyncio.subprocess.Process, peer_id: str) -> None:
        self.proc = proc
        self.peer_id = peer_id

    @classmethod
    async def start(cls, port: int, udp_buffer: int | None = None) -> Sink:
        peer_id = "sink-" + secrets.token_hex(4)
        extra = ["--udp-buffer", str(udp_buffer)] if udp_buffer else []
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.clientpeer", "sink", "--port", str(port),
            "--id", peer_id, *extra, cwd=servers.ROOT, env=client_env(),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        if line.strip() != b"ready":
            raise RuntimeError(f"the Python sink did not start ({line!r})")
        return cls(proc, peer_id)

    async def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


def client_env() -> dict[str, str]:
    """Subprocesses import this tree's ``peerhub_client``."""
    import os

    paths = [str(servers.ROOT / "client"), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


async def python_sender(port: int, to: str, result: ClientResult, reps: int,
                        udp_buffer: int | None = None) -> list[ClientSample]:
    """Run ``python -m bench.clientpeer send`` and read its samples."""
    extra = ["--udp-buffer", str(udp_buffer)] if udp_buffer else []
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.clientpeer", "send", "--port", str(port), "--to", to,
        "--reps", str(reps), "--small", str(result.small), "--large", str(result.large),
        *extra, cwd=servers.ROOT, env=client_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 600)
    if proc.returncode != 0:
        raise RuntimeError(f"the Python sender failed: {err.decode(errors='replace')[-1500:]}")
    return [ClientSample(**json.loads(line)) for line in out.decode().splitlines() if line]


async def browser_sender(page: Any, to: str, result: ClientResult, reps: int
                         ) -> list[ClientSample]:
    """The same runs from a Chromium page (PeerJS 1.5.5)."""
    samples = []
    for _ in range(reps):
        open_ms = await page.evaluate("(to) => cb.open(to)", to)
        runs = {}
        for kind, n in (("small", result.small), ("large", result.large)):
            drops = udp_rcvbuf_errors()
            done = await page.evaluate("([kind, n]) => cb.run(kind, n)", [kind, n])
            if done["got"] != n:
                raise RuntimeError(f"the sink counted {done['got']} of {n} messages")
            runs[kind] = (done["seconds"], udp_rcvbuf_errors() - drops)
        await page.evaluate("cb.close()")
        samples.append(ClientSample(
            open_ms, result.small / runs["small"][0], runs["small"][1],
            result.large * 1024 * 1024 / 1e6 / runs["large"][0], runs["large"][1],
        ))  # fmt: skip
    return samples


async def browser_pages(browser: Any, count: int, port: int) -> list[Any]:
    """``count`` pages with PeerJS and the bench helpers, each in its own context."""
    from tests.client.browser_harness import open_client_page

    pages = []
    for _ in range(count):
        page = await open_client_page(browser)
        await page.add_script_tag(content=BENCH_JS)
        pages.append(page)
    return pages


def page_options(port: int) -> dict[str, Any]:
    return {"host": servers.HOST, "port": port, "path": "/", "key": "peerjs",
            "secure": False, "config": {"iceServers": []}, "debug": 0}  # fmt: skip


async def measure(workdir: Path, reps: int = 3, small: int = 5000, large: int = 20
                  ) -> ClientResult:
    """Every path against one fresh peerhub."""
    result = ClientResult(small, large)
    hub = servers.start_peerhub(workdir / "client-peerhub", name="peerhub-client-phase")
    with servers.running(hub):
        for name, buffer in ((PY_PY, None), (PY_PY_SMALL_BUFFER, AIOICE_BUFFER)):
            sink = await Sink.start(hub.port, buffer)
            try:
                result.samples[name] = await python_sender(hub.port, sink.peer_id, result,
                                                           reps, buffer)  # fmt: skip
            finally:
                await sink.stop()
        await measure_browsers(hub.port, result, reps)
    return result


async def measure_browsers(port: int, result: ClientResult, reps: int) -> None:
    from playwright.async_api import Error as PlaywrightError
    from playwright.async_api import async_playwright

    from tests.conftest import CHROMIUM, CHROMIUM_ARGS

    if not Path(CHROMIUM).exists():
        result.errors.append(f"no Chromium at {CHROMIUM}: browser paths not measured")
        return
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            await browser_paths(browser, port, result, reps)
        except PlaywrightError as exc:
            raise RuntimeError(f"browser paths failed: {exc}") from exc
        finally:
            await browser.close()


async def browser_paths(browser: Any, port: int, result: ClientResult, reps: int) -> None:
    """browser → Python, then browser → browser, from the same sender page."""
    sender_page, sink_page = await browser_pages(browser, 2, port)
    await sender_page.evaluate("(o) => cb.sender(o)", page_options(port))
    sink = await Sink.start(port)
    try:
        result.samples[BROWSER_PY] = await browser_sender(sender_page, sink.peer_id,
                                                          result, reps)  # fmt: skip
    finally:
        await sink.stop()
    sink_id = await sink_page.evaluate("(o) => cb.sink(o)", page_options(port))
    result.samples[BROWSER_BROWSER] = await browser_sender(sender_page, sink_id,
                                                           result, reps)  # fmt: skip


# --- the report -----------------------------------------------------------------------


def table(result: ClientResult) -> str:
    """One Markdown table of medians per path, then the two target ratios."""
    headers = ["path (median of repetitions)", "open, ms",
               f"{result.large} x 1 MiB, MB/s", f"{result.small:,} small msg/s",
               "UDP drops small / 1 MiB"]  # fmt: skip
    lines = []
    for name in PATHS:
        samples = result.samples.get(name, [])
        if not samples:
            continue
        lines.append([
            name, report.decimal(stats.median([s.open_ms for s in samples]), 1),
            report.decimal(stats.median([s.mb_per_s for s in samples]), 1),
            report.count(stats.median([s.small_rate for s in samples])),
            f"{report.count(stats.median([s.small_drops for s in samples]))} / "
            f"{report.count(stats.median([s.large_drops for s in samples]))}",
        ])  # fmt: skip
    widths = [max(len(row[i]) for row in [headers, *lines]) for i in range(len(headers))]

    def line(values: list[str]) -> str:
        return "| " + " | ".join(v.ljust(widths[i]) if i == 0 else v.rjust(widths[i])
                                 for i, v in enumerate(values)) + " |"  # fmt: skip

    rule = "|" + "|".join("-" * (w + 1) + (":" if i else "-") for i, w in enumerate(widths)) + "|"
    out = [line(headers), rule, *(line(row) for row in lines)]
    py, br = result.samples.get(PY_PY, []), result.samples.get(BROWSER_BROWSER, [])
    if py and br:
        small = stats.ratio(stats.median([s.small_rate for s in py]),
                            stats.median([s.small_rate for s in br]))  # fmt: skip
        large = stats.ratio(stats.median([s.mb_per_s for s in py]),
                            stats.median([s.mb_per_s for s in br]))  # fmt: skip
        out.append("")
        out.append(f"- Python → Python / browser → browser: small messages "
                   f"{report.times(small)} (target >= 0.5), 1 MiB messages "
                   f"{report.times(large)} (target >= 1)")  # fmt: skip
    out += [f"- ERROR: {e}" for e in result.errors]
    return "\n".join(out)
