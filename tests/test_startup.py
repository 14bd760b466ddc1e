"""Start-up: a bad setting is one line naming it and exit 2; --help, --version, the
settings line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

import peerhub
from peerhub.startup import SETTINGS, effective_line, help_text, mask_url, validate
from tests.servers import ROOT, LiveServer


def serve(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m peerhub.serve`` with ``env`` added (expected to exit by itself)."""
    full = {**os.environ, "PEERHUB_VAR_DIR": str(tmp_path), "HOST": "127.0.0.1", **env}
    return subprocess.run([sys.executable, "-m", "peerhub.serve", *args], cwd=ROOT,
                          env=full, text=True, capture_output=True, timeout=60)


@pytest.mark.parametrize(("env", "expected"), [
    ({"PORT": "70000"}, "PORT must be from 1 to 65535, got 70000"),
    ({"PORT": "0"}, "PORT must be from 1 to 65535, got 0"),
    ({"PORT": "abc"}, "PORT must be a whole number, got 'abc'"),
    ({"EXPIRE_TIMEOUT": "5s"}, "EXPIRE_TIMEOUT must be a whole number, got '5s'"),
    ({"ALIVE_TIMEOUT": "50"}, "ALIVE_TIMEOUT must be >= 100, got 50"),
    ({"UVLOOP": "maybe"}, "UVLOOP must be true or false"),
    ({"REDIS_URL": "redis://127.0.0.1:1/0"}, "REDIS_URL cannot be used (redis://127.0.0.1:1/0)"),
    ({"REDIS_URL": "localhost:6379"}, "REDIS_URL must be a URL starting with redis://"),
    ({"REDIS_URL": "redis://127.0.0.1:6379/99"}, "DB index is out of range"),
    ({"REDIS_URL": "redis://127.0.0.1:6379/cache"}, "REDIS_URL names database 'cache'"),
    ({"REDIS_URL": "redis://:hunter2@127.0.0.1:1/0"}, "REDIS_URL cannot be used "
                                                      "(redis://:***@127.0.0.1:1/0)"),
    ({"DATABASE_URL": "postgres://postgres@127.0.0.1:1/nosuch"},
     "DATABASE_URL cannot be reached"),
    ({"DATABASE_URL": "oracle://x/y"}, "DATABASE_URL must be a URL starting with"),
    ({"LOG_FORMAT": "xml"}, "LOG_FORMAT must be one of plain, json"),
    ({"METRICS_ALLOW": "10.0.0.0/99"}, "METRICS_ALLOW holds '10.0.0.0/99'"),
    ({"CSRF_TRUSTED_ORIGINS": "peers.example.com"}, "CSRF_TRUSTED_ORIGINS holds"),
])
def test_a_bad_setting_is_one_line_naming_it_and_exit_2(
        tmp_path: Path, env: dict[str, str], expected: str) -> None:
    result = serve(tmp_path, **env)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("peerhub: ") and expected in lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    assert "hunter2" not in result.stdout + result.stderr


def test_help_lists_every_setting_and_does_not_serve(tmp_path: Path) -> None:
    result = serve(tmp_path, "--help", PORT="70000")
    assert result.returncode == 0
    for setting in SETTINGS:
        assert re.search(rf"^  {setting.name} ", result.stdout, re.M), setting.name
    assert result.stdout.strip() == help_text()


def test_version_is_printed(tmp_path: Path) -> None:
    result = serve(tmp_path, "--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"peerhub {peerhub.__version__}"


def test_an_unknown_argument_is_refused(tmp_path: Path) -> None:
    result = serve(tmp_path, "--port", "9000")
    assert result.returncode == 2
    assert "unknown argument '--port'" in result.stderr


def test_settings_line_masks_secrets() -> None:
    line = effective_line({"SECRET_KEY": "s3cret", "TURN_SECRET": "t0p",
                           "REDIS_URL": "redis://user:pw@10.0.0.1:6379/2", "PORT": "9100"})
    assert "s3cret" not in line and "t0p" not in line and ":pw@" not in line
    assert "SECRET_KEY=***" in line and "REDIS_URL=redis://user:***@10.0.0.1:6379/2" in line
    assert "PORT=9100" in line and "EXPIRE_TIMEOUT=5000" in line
    assert mask_url("postgres://u@h/db") == "postgres://u@h/db"


def test_every_default_passes_its_own_check() -> None:
    validate({s.name: s.default for s in SETTINGS if s.default and s.default[0].isalnum()
              and " " not in s.default and s.name not in ("DATABASE_URL", "NODE_NAME")})


def test_readme_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [s.name for s in SETTINGS if f"`{s.name}`" not in readme]
    assert missing == []


def test_a_started_server_prints_its_settings_once_with_secrets_masked(
        start_server: Callable[..., AbstractContextManager[LiveServer]]) -> None:
    with start_server(SECRET_KEY="x" * 50 + "-do-not-print") as server:
        log = server.log()
    lines = [ln for ln in log.splitlines() if ": settings " in ln]
    assert len(lines) == 1, log
    assert f"PORT={server.port}" in lines[0] and "SECRET_KEY=***" in lines[0]
    assert "do-not-print" not in log


def test_an_exit_that_hangs_is_ended_with_every_threads_stack() -> None:
    """After the server stops, a thread that never ends (a database call that never
    answers) must not keep the process alive: the watchdog names it, prints the stacks
    and exits 1."""
    script = ("import threading\n"
              "from peerhub.serve import exit_watchdog\n"
              "threading.Thread(target=threading.Event().wait, name='stuck-writer').start()\n"
              "exit_watchdog(0.5)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert "peerhub: exiting took over 0s; still running: MainThread, stuck-writer" in done.stderr
    assert 'File "' in done.stderr  # the stacks themselves


def test_a_clean_exit_is_not_held_by_the_watchdog() -> None:
    script = "from peerhub.serve import exit_watchdog\nexit_watchdog(30)\n"
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=20)
    assert (done.returncode, done.stderr) == (0, "")
