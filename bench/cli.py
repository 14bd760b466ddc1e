"""``python -m bench``: run every scenario against peerhub and peerjs-server, print
one table of medians with the peerhub / peerjs-server ratio per row.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Coroutine
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from bench import servers
from bench.cluster import ClusterSetup
from bench.config import FULL, QUICK, Sizes
from bench.runs import PHASES, Run, run_phases
from bench.table import machine, print_report

logger = logging.getLogger(__name__)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small counts: a smoke run under a minute")
    ap.add_argument("--phases", default=",".join(PHASES),
                    help=f"comma-separated subset of {', '.join(PHASES)}")
    ap.add_argument("--profile", type=Path, metavar="DIR",
                    help="record peerhub with py-spy during extra connections and bursts; "
                         "write to DIR")
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/0",
                    help="Redis for the cluster phase (default %(default)s)")
    ap.add_argument("--private-redis", action="store_true",
                    help="run the cluster phase on a redis-server of its own (exact Redis "
                         "command counts; the default Redis may be shared)")
    ap.add_argument("--cluster-database-url", default="",
                    help="database shared by the cluster nodes (default: a new SQLite file)")
    ap.add_argument("--json", type=Path, metavar="FILE", help="also write every sample as JSON")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (server logs)")
    ap.add_argument("-v", "--verbose", action="store_true", help="log progress")
    return ap.parse_args(argv)


def ephemeral_ports() -> int:
    """How many local ports outgoing connections can use (Linux), or 0 if unknown."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        return 0
    return high - low + 1


def fit_to_limits(sizes: Sizes, fd_limit: int, ports: int) -> Sizes:
    """Drop capacity steps that the open-files limit or the ephemeral port range
    cannot hold (with a margin for sockets still in TIME_WAIT and everything else)."""
    usable = fd_limit - 500
    if ports:
        usable = min(usable, ports - 2000)
    steps = tuple(s for s in sizes.capacity_steps if s <= usable)
    if steps != sizes.capacity_steps:
        logger.warning("open-files limit %d, %d ephemeral ports: capacity steps cut to %s",
                       fd_limit, ports, steps)
    return replace(sizes, capacity_steps=steps or (usable,))


def event_loop_name() -> str:
    """``uvloop`` when it is installed (bench/requirements.txt), else ``asyncio``."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def run_loop(main_coro: Coroutine[Any, Any, None]) -> None:
    """Run the generator on uvloop if available (cheaper per frame), else asyncio."""
    if event_loop_name() == "uvloop":
        import uvloop

        uvloop.run(main_coro)
    else:
        asyncio.run(main_coro)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the table."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    limit = servers.raise_open_files_limit()
    sizes = fit_to_limits(QUICK if args.quick else FULL, limit, ephemeral_ports())
    phases = {p.strip() for p in args.phases.split(",") if p.strip()}
    unknown = phases - set(PHASES)
    if unknown:
        sys.exit(f"unknown phases: {', '.join(sorted(unknown))}")
    workdir = Path(tempfile.mkdtemp(prefix="peerhub-bench-"))
    run = Run(sizes, workdir, "r" + secrets.token_hex(3), profile_dir=args.profile)
    setup = ClusterSetup(args.redis_url, args.cluster_database_url, args.private_redis)
    header = machine(event_loop_name())
    started = time.monotonic()
    try:
        run_loop(run_phases(run, phases, setup))
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print_report(run, header, time.monotonic() - started)
    if args.json is not None:
        write_json(run, header, args.json)


def write_json(run: Run, header: list[str], path: Path) -> None:
    """Every sample of ``run`` as JSON, for comparing runs later."""
    data = {
        "machine": header,
        "sizes": asdict(run.sizes),
        "results": {name: asdict(res) for name, res in run.results.items()},
        "cluster": asdict(run.cluster) if run.cluster is not None else None,
        "client": asdict(run.client) if run.client is not None else None,
        "errors": run.errors,
    }
    path.write_text(json.dumps(data, indent=1, default=str) + "\n")
