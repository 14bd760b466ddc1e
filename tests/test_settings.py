"""Settings from the environment, system checks and the production check."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest

from peerhub.env import ImproperEnvironment, env_bool, env_int, env_list, normalise_mount_path
from tests.servers import ROOT

PRODUCTION = {
    "SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "peers.example.com",
    "SECURE_SSL_REDIRECT": "true", "SECURE_COOKIES": "true",
    "SECURE_HSTS_SECONDS": "31536000", "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "SECURE_HSTS_PRELOAD": "true", "DEBUG": "false",
}


def manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, text=True,
                          capture_output=True, env={**os.environ, **env})


def test_documented_production_settings_pass_check_deploy(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = manage("check", "--deploy", "--fail-level", "WARNING",
                    PEERHUB_VAR_DIR=str(tmp_path), **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cluster_on_sqlite_is_warned_about(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = manage("check", PEERHUB_VAR_DIR=str(tmp_path), REDIS_URL="redis://127.0.0.1:1")
    assert "peerhub.W001" in result.stdout + result.stderr


def test_embedded_secret_key_is_random_per_install_and_kept(tmp_path) -> None:  # type: ignore[no-untyped-def]
    code = "from django.conf import settings; print(settings.SECRET_KEY)"
    first = manage("shell", "--no-imports", "-c", code, PEERHUB_VAR_DIR=str(tmp_path / "a"))
    again = manage("shell", "--no-imports", "-c", code, PEERHUB_VAR_DIR=str(tmp_path / "a"))
    other = manage("shell", "--no-imports", "-c", code, PEERHUB_VAR_DIR=str(tmp_path / "b"))
    key = first.stdout.strip().splitlines()[-1]
    assert len(key) >= 50
    assert again.stdout.strip().splitlines()[-1] == key
    assert other.stdout.strip().splitlines()[-1] != key
    assert (tmp_path / "a" / "secret_key").stat().st_mode & 0o077 == 0


def test_env_helpers_parse_and_reject(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_INT", "12")
    monkeypatch.setenv("X_BOOL", "yes")
    monkeypatch.setenv("X_LIST", "a, b,,c")
    assert env_int("X_INT", 0) == 12
    assert env_bool("X_BOOL", False) is True
    assert env_list("X_LIST", []) == ["a", "b", "c"]
    monkeypatch.setenv("X_INT", "twelve")
    with pytest.raises(ImproperEnvironment, match="X_INT"):
        env_int("X_INT", 0)
    monkeypatch.setenv("X_BOOL", "maybe")
    with pytest.raises(ImproperEnvironment, match="X_BOOL"):
        env_bool("X_BOOL", False)


@pytest.mark.parametrize(("raw", "path"), [("", "/"), ("/", "/"), ("myapp", "/myapp/"),
                                           ("/myapp/", "/myapp/"), ("/a/b", "/a/b/")])
def test_mount_path_is_normalised(raw: str, path: str) -> None:
    assert normalise_mount_path(raw) == path
