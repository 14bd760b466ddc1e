"""Packaging promises: an installable ``peerhub-client`` without Django, type hints, the CLI.

The install tests make fresh virtualenvs and install from PyPI (aiortc's wheels): the
first run takes a minute, later ones use pip's cache.
"""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from tests.servers import ROOT

from .bots import tree_env

CLIENT = ROOT / "client"
CHECK_INSTALLED = (
    "import importlib.util, sys, peerhub_client, peerhub_client.cli, peerhub_client.bots.echo, "
    "peerhub_client.bots.filedrop; "
    "assert importlib.util.find_spec('django') is None, 'django is installed'; "
    "assert 'site-packages' in peerhub_client.__file__, peerhub_client.__file__; "
    "print(peerhub_client.__file__)"
)


def test_client_never_imports_django() -> None:
    code = ("import sys, peerhub_client, peerhub_client.cli, peerhub_client.bots.echo, peerhub_client.bots.filedrop; "
            "bad = [m for m in sys.modules if m == 'django' or m.startswith(('django.', 'signalling', 'peerhub.', 'apikeys'))]; "
            "print(bad); sys.exit(1 if bad else 0)")  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=tree_env()
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_client_ships_type_hints() -> None:
    assert (CLIENT / "peerhub_client/py.typed").exists()


def test_cli_help_lists_both_bots() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "peerhub_client", "--help"],
        cwd=ROOT, capture_output=True, text=True, env=tree_env(),
    )  # fmt: skip
    assert result.returncode == 0 and "echo" in result.stdout and "filedrop" in result.stdout


def _fresh_venv(where: Path) -> Path:
    venv.EnvBuilder(with_pip=True, clear=True).create(where)
    return where / "bin"


def _run(*args: str | Path, cwd: Path) -> str:
    result = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.timeout(600)
def test_pip_install_of_the_source_tree_and_of_the_wheel_work_in_fresh_venvs(
    tmp_path: Path,
) -> None:
    # a copy, so the build leaves nothing behind in the tree
    source = tmp_path / "src"
    subprocess.run(["cp", "-r", str(CLIENT), str(source)], check=True)
    elsewhere = tmp_path / "elsewhere"  # not the repository: only the venv can provide it
    elsewhere.mkdir()

    bin1 = _fresh_venv(tmp_path / "venv-src")
    _run(bin1 / "pip", "install", "-q", str(source), cwd=elsewhere)
    assert "site-packages" in _run(bin1 / "python", "-c", CHECK_INSTALLED, cwd=elsewhere)
    assert "filedrop" in _run(bin1 / "peerhub-bot", "--help", cwd=elsewhere)

    wheels = tmp_path / "wheels"
    _run(bin1 / "pip", "wheel", "-q", "--no-deps", "-w", wheels, str(source), cwd=elsewhere)
    (wheel,) = wheels.glob("peerhub_client-*.whl")
    bin2 = _fresh_venv(tmp_path / "venv-wheel")
    _run(bin2 / "pip", "install", "-q", wheel, cwd=elsewhere)
    _run(bin2 / "python", "-c", CHECK_INSTALLED, cwd=elsewhere)
    requires = _run(bin2 / "python", "-c",
                    "import importlib.metadata as m; print(m.requires('peerhub-client'))",
                    cwd=elsewhere)  # fmt: skip
    assert "aiortc" in requires and "msgpack" in requires and "websockets" in requires
    assert "django" not in requires.lower()
    # the wheel holds the package and its type hints, nothing of the server
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist()}
        assert {"peerhub_client/py.typed", "peerhub_client/bots/echo.py"} <= set(archive.namelist())
    assert tops == {"peerhub_client", wheel.name.split("-py3")[0] + ".dist-info"}, tops
    assert "usage: peerhub-bot" in _run(bin2 / "peerhub-bot", "--help", cwd=elsewhere)
