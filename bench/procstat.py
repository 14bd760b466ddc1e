"""CPU time and resident memory of a process, read from ``/proc``."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class ProcSample:
    """One reading: CPU seconds used so far (user + system), RSS, and when."""

    cpu: float
    rss: int
    at: float


def process_clock(pid: int) -> int:
    """Linux's CPU-time clock id for a whole process (``CPUCLOCK_SCHED``, per process).

    Reading it gives nanosecond precision where ``/proc/PID/stat`` counts 10 ms ticks.
    """
    return ((~pid) << 3) | 2


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) used by ``pid`` so far, in seconds."""
    try:
        return time.clock_gettime(process_clock(pid))
    except OSError:
        return stat_cpu_seconds(pid)


def stat_cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` from ``/proc/PID/stat`` (10 ms resolution)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    # The command name may hold spaces; the fields after it are space-separated.
    fields = stat[stat.rindex(b")") + 2:].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _TICKS


def read_calls(pid: int) -> int:
    """Read system calls (``read``, ``readv``, ``pread``...) ``pid`` made so far, from
    ``/proc/PID/io`` (``syscr``)."""
    with open(f"/proc/{pid}/io", "rb") as f:
        for line in f:
            if line.startswith(b"syscr:"):
                return int(line.split()[1])
    raise ProcessLookupError(f"no syscr for pid {pid}")


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid``."""
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmRSS:"):
                return int(line.split()[1]) * 1024
    raise ProcessLookupError(f"no VmRSS for pid {pid}")


def sample(pid: int) -> ProcSample:
    """Read ``pid``'s CPU time and RSS now."""
    return ProcSample(cpu_seconds(pid), rss_bytes(pid), time.perf_counter())


def cpu_share(before: ProcSample, after: ProcSample) -> float:
    """Fraction of one core used between two samples (1.0 = a whole core)."""
    wall = after.at - before.at
    return (after.cpu - before.cpu) / wall if wall > 0 else 0.0


class CpuMeter:
    """Adds up one process's CPU time and wall time over several windows."""

    def __init__(self, pid: int):
        self.pid = pid
        self.cpu = 0.0
        self.wall = 0.0
        self._start: ProcSample | None = None

    def begin(self) -> None:
        """Open a window."""
        self._start = sample(self.pid)

    def end(self) -> None:
        """Close the window opened by :meth:`begin`."""
        if self._start is None:
            return
        now = sample(self.pid)
        self.cpu += now.cpu - self._start.cpu
        self.wall += now.at - self._start.at
        self._start = None

    @property
    def share(self) -> float:
        """Fraction of one core over all windows."""
        return self.cpu / self.wall if self.wall > 0 else 0.0
