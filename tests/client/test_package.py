"""Packaging promises: no Django, type hints shipped, CLI help."""

from __future__ import annotations

import subprocess
import sys

from tests.servers import ROOT


def test_client_never_imports_django() -> None:
    code = ("import sys, client, client.cli, client.bots.echo, client.bots.filedrop; "
            "bad = [m for m in sys.modules if m == 'django' or m.startswith(('django.', 'signalling', 'peerhub', 'apikeys'))]; "
            "print(bad); sys.exit(1 if bad else 0)")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_client_ships_type_hints() -> None:
    assert (ROOT / "client/py.typed").exists()


def test_cli_help_lists_both_bots() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "client", "--help"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0 and "echo" in result.stdout and "filedrop" in result.stdout
