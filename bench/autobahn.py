"""Autobahn|Testsuite's fuzzingclient against peerhub's websocket code (an echo server).

``python -m bench.autobahn`` (``make autobahn``):

1. makes a Python 2.7 virtualenv in ``.vendor/autobahn-py27`` if there is none, with
   the pinned ``bench/autobahn-requirements.txt`` (the suite runs on Python 2.7 only;
   pyenv's 2.7 is found, or name one with ``--python27``);
2. starts ``bench.echoserver`` on a free loopback port;
3. runs ``wstest -m fuzzingclient`` with a generated spec (cases 1-10 by default);
4. reads the suite's JSON report and prints ``N OK, N NON-STRICT, N FAILED, ...`` and
   each case that did not pass. It exits non-zero if a case FAILED.

Nothing here is part of ``make test``: the full run takes minutes (see BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.servers import ROOT, free_port

VENV = ROOT / ".vendor" / "autobahn-py27"
REQUIREMENTS = ROOT / "bench" / "autobahn-requirements.txt"
#: The last virtualenv that still makes Python 2.7 environments (and runs on 2.7).
VIRTUALENV = "virtualenv==20.15.1"
DEFAULT_CASES = [f"{n}.*" for n in range(1, 11)]
#: The order the summary line uses (the suite's own behaviour names).
BEHAVIOURS = ("OK", "NON-STRICT", "FAILED", "INFORMATIONAL", "UNIMPLEMENTED")


class AutobahnError(RuntimeError):
    """The suite could not be installed or run."""


@dataclass(frozen=True, slots=True)
class CaseResult:
    """One case's outcome, as the suite's index.json gives it."""

    case: str
    behavior: str
    behavior_close: str
    description: str = ""
    result: str = ""


def find_python27(explicit: str | None) -> str:
    """A Python 2.7 interpreter: ``explicit``, else pyenv's, else ``python2.7`` on PATH."""
    if explicit:
        return explicit
    pyenv_root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    found = sorted(glob.glob(os.path.join(pyenv_root, "versions", "2.7*", "bin", "python2.7")))
    if found:
        return found[-1]
    on_path = shutil.which("python2.7")
    if on_path:
        return on_path
    raise AutobahnError("no Python 2.7 found (pyenv install 2.7.18, or pass --python27)")


def ensure_venv(python27: str) -> Path:
    """The virtualenv's ``wstest``, made and filled first if it is missing."""
    wstest = VENV / "bin" / "wstest"
    if wstest.exists():
        return wstest
    shutil.rmtree(VENV, ignore_errors=True)  # what an interrupted install left
    with tempfile.TemporaryDirectory(prefix="peerhub-virtualenv-") as boot:
        run([python27, "-m", "pip", "install", "-q", "--target", boot, VIRTUALENV])
        run([python27, "-m", "virtualenv", "-q", str(VENV)], env={"PYTHONPATH": boot})
    run([str(VENV / "bin" / "pip"), "install", "-q", "-r", str(REQUIREMENTS)])
    if not wstest.exists():
        raise AutobahnError(f"{wstest} missing after the install")
    return wstest


def run(argv: list[str], env: dict[str, str] | None = None) -> None:
    """Run an install step; raise :class:`AutobahnError` with its output if it fails."""
    done = subprocess.run(argv, env={**os.environ, **(env or {})}, capture_output=True,
                          text=True, check=False)
    if done.returncode:
        raise AutobahnError(f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}")


def spec(url: str, outdir: Path, cases: list[str], exclude: list[str]) -> dict[str, object]:
    """The fuzzingclient's spec file."""
    return {
        "outdir": str(outdir),
        "servers": [{"agent": "peerhub", "url": url}],
        "cases": cases,
        "exclude-cases": exclude,
        "exclude-agent-cases": {},
    }


def start_echo(port: int, log: Path) -> subprocess.Popen[bytes]:
    """``bench.echoserver`` on ``port``, once it listens."""
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "bench.echoserver", "--port", str(port)],
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AutobahnError(f"the echo server exited:\n{log.read_text(errors='replace')}")
        if b"echo websocket on" in log.read_bytes():
            return proc
        time.sleep(0.05)
    proc.kill()
    raise AutobahnError("the echo server did not start in 30 s")


def read_report(outdir: Path, agent: str = "peerhub") -> list[CaseResult]:
    """Every case of ``agent`` in the suite's ``index.json``, in case order."""
    index = json.loads((outdir / "index.json").read_text())
    out = []
    for case, entry in sorted(index[agent].items(), key=lambda kv: case_key(kv[0])):
        description = result = ""
        report_file = outdir / entry.get("reportfile", "")
        if entry["behavior"] not in ("OK", "INFORMATIONAL") and report_file.is_file():
            detail = json.loads(report_file.read_text())
            description = str(detail.get("description", ""))
            result = str(detail.get("result", ""))
        out.append(CaseResult(case, entry["behavior"], entry.get("behaviorClose", ""),
                              description, result))
    return out


def case_key(case: str) -> tuple[int, ...]:
    """Sort ``9.10.2`` after ``9.2.1``."""
    return tuple(int(part) for part in case.split(".") if part.isdigit())


def summary(results: list[CaseResult]) -> str:
    """``N OK, N NON-STRICT, N FAILED, N INFORMATIONAL, N UNIMPLEMENTED``."""
    counts = Counter(r.behavior for r in results)
    parts = [f"{counts.pop(name, 0)} {name}" for name in BEHAVIOURS]
    parts += [f"{n} {name}" for name, n in sorted(counts.items())]
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status."""
    ap = argparse.ArgumentParser(prog="python -m bench.autobahn", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default=",".join(DEFAULT_CASES),
                    help="comma-separated case patterns (default: %(default)s)")
    ap.add_argument("--exclude", default="", help="comma-separated case patterns to skip")
    ap.add_argument("--python27", help="the Python 2.7 interpreter for the suite")
    ap.add_argument("--report-dir", type=Path,
                    help="keep the suite's HTML and JSON report here (default: a temporary one)")
    ap.add_argument("--timeout", type=float, default=1800.0,
                    help="seconds the whole run may take (default %(default)s)")
    args = ap.parse_args(argv)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    exclude = [c.strip() for c in args.exclude.split(",") if c.strip()]
    try:
        wstest = ensure_venv(find_python27(args.python27))
        with tempfile.TemporaryDirectory(prefix="peerhub-autobahn-") as tmp:
            work = Path(tmp)
            outdir = args.report_dir.resolve() if args.report_dir else work / "reports"
            results = fuzz(wstest, work, outdir, cases, exclude, args.timeout)
    except AutobahnError as exc:
        print(f"autobahn: {exc}", file=sys.stderr)
        return 2
    print(summary(results))
    for r in results:
        if r.behavior not in ("OK", "INFORMATIONAL"):
            print(f"- {r.case} {r.behavior} (close: {r.behavior_close}): {r.description}"
                  f"{' / ' + r.result if r.result else ''}")
    if args.report_dir:
        print(f"report: {outdir / 'index.html'}")
    return 1 if any(r.behavior == "FAILED" for r in results) else 0


def fuzz(wstest: Path, work: Path, outdir: Path, cases: list[str], exclude: list[str],
         timeout: float) -> list[CaseResult]:
    """Start the echo server, run the fuzzingclient against it, read the report."""
    port = free_port()
    spec_file = work / "fuzzingclient.json"
    spec_file.write_text(json.dumps(spec(f"ws://127.0.0.1:{port}/peerjs", outdir, cases,
                                         exclude), indent=1))
    echo = start_echo(port, work / "echo.log")
    try:
        try:
            done = subprocess.run([str(wstest), "-m", "fuzzingclient", "-s", str(spec_file)],
                                  cwd=work, capture_output=True, text=True, timeout=timeout,
                                  check=False)
        except subprocess.TimeoutExpired:
            raise AutobahnError(f"the fuzzingclient took more than {timeout:.0f} s") from None
        if done.returncode or not (outdir / "index.json").exists():
            raise AutobahnError(f"wstest exited {done.returncode}:\n{done.stdout[-3000:]}"
                                f"\n{done.stderr[-3000:]}")
    finally:
        echo.terminate()
        try:
            echo.wait(10)
        except subprocess.TimeoutExpired:
            echo.kill()
            echo.wait()
    if echo.returncode not in (0, -15):
        raise AutobahnError(f"the echo server exited {echo.returncode}:\n"
                            f"{(work / 'echo.log').read_text(errors='replace')[-3000:]}")
    return read_report(outdir)


if __name__ == "__main__":
    sys.exit(main())
