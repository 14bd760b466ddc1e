"""Sampling the peerhub process with py-spy while it relays, and summarising where the
time goes (``python -m bench --profile DIR``; py-spy is in bench/requirements.txt).
"""

from __future__ import annotations

import logging
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

logger = logging.getLogger(__name__)


class ProfilerUnavailable(RuntimeError):
    """py-spy is not installed."""


def py_spy() -> str:
    """The py-spy executable next to this Python, or on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    if beside.exists():
        return str(beside)
    found = shutil.which("py-spy")
    if found is None:
        raise ProfilerUnavailable("py-spy is not installed: pip install -r bench/requirements.txt")
    return found


class Recording:
    """A py-spy ``record`` of one process into collapsed stacks (``--format raw``)."""

    def __init__(self, pid: int, output: Path, rate: int = 250):
        self.output = output
        argv = [py_spy(), "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw",
                "--nolineno", "--nonblocking", "--output", str(output)]
        self._proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)

    def stop(self) -> None:
        """Stop sampling and let py-spy write its file."""
        self._proc.send_signal(signal.SIGINT)
        try:
            _, err = self._proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            _, err = self._proc.communicate()
        if not self.output.exists():
            logger.warning("py-spy wrote nothing: %s", err.decode(errors="replace")[-500:])


def read_stacks(path: Path) -> Counter[tuple[str, ...]]:
    """Collapsed stacks (``a;b;c 12`` per line) from a py-spy raw file."""
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if stack and n.isdigit():
            stacks[tuple(stack.split(";"))] += int(n)
    return stacks


#: Leaf frames that mean "waiting for work" (py-spy does not always drop them).
IDLE_LEAVES = ("EpollSelector.select (selectors.py)", "_worker (concurrent/futures/thread.py)")


def package_of(frame: str) -> str:
    """The top-level package of a py-spy frame ``func (pkg/module.py)``."""
    where = frame.rpartition(" (")[2].rstrip(")")
    head = where.split("/", 1)[0]
    return head.removesuffix(".py") or "?"


def summarise(stacks: Counter[tuple[str, ...]], top: int = 20) -> str:
    """The functions with the most samples: on top of the stack (self) and anywhere
    in it (inclusive), as percentages of the busy samples (idle waits left out)."""
    busy = {s: n for s, n in stacks.items() if s[-1] not in IDLE_LEAVES}
    idle = sum(stacks.values()) - sum(busy.values())
    total = sum(busy.values()) or 1
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    for stack, n in busy.items():
        own[stack[-1]] += n
        packages[package_of(stack[-1])] += n
        for frame in set(stack):
            inclusive[frame] += n
    lines = [f"{total} busy samples ({idle} idle waits left out)", "", "self %  package"]
    lines += [f"{100 * n / total:6.1f}  {p}" for p, n in packages.most_common(12)]
    lines += ["", "self %  function"]
    lines += [f"{100 * n / total:6.1f}  {f}" for f, n in own.most_common(top)]
    lines += ["", "incl %  function"]
    lines += [f"{100 * n / total:6.1f}  {f}" for f, n in inclusive.most_common(top)]
    return "\n".join(lines)
