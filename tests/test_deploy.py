"""What ships in deploy/: the systemd unit passes ``systemd-analyze verify``, and the nginx
site serves TLS with the Host port kept (an admin login through a non-default https port
passes Django's CSRF check), websockets over TLS, and no /metrics."""

from __future__ import annotations

import http.cookiejar
import re
import shutil
import ssl
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from websockets.asyncio.client import connect

import peerhub
from tests.conftest import missing
from tests.nginx import nginx_binary, running_nginx_tls
from tests.servers import ROOT, manage
from tests.test_apikeys_helpers import StartServer
from tests.wsclient import recv

UNIT = ROOT / "deploy" / "peerhub@.service"
PASSWORD = "deploy-horse-battery-7"


def verify_unit(directory: Path, text: str) -> subprocess.CompletedProcess[str]:
    """``systemd-analyze verify`` of ``text`` as peerhub@9001.service."""
    exe = shutil.which("systemd-analyze")
    if exe is None:
        missing("systemd-analyze is not installed (apt-get install systemd)")
    (directory / "peerhub@.service").write_text(text)
    return subprocess.run([str(exe), "verify", str(directory / "peerhub@9001.service")],
                          capture_output=True, text=True, timeout=60)


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    # The unit names /opt/peerhub; verify checks that the commands exist, so it is
    # pointed at this checkout (its .venv) instead.
    text = UNIT.read_text().replace("/opt/peerhub", str(ROOT))
    result = verify_unit(tmp_path, text)
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr
    assert "RestartPreventExitStatus=2" in text  # a bad setting does not restart-loop


def test_systemd_verify_would_catch_a_broken_unit(tmp_path: Path) -> None:
    broken = UNIT.read_text().replace("/opt/peerhub", "/nonexistent/peerhub")
    result = verify_unit(tmp_path, broken)
    assert result.returncode != 0 and "is not executable" in result.stderr


def test_unit_and_readme_agree_on_the_version_command() -> None:
    out = subprocess.run([str(ROOT / ".venv/bin/python"), "-m", "peerhub.serve", "--version"],
                         cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"peerhub {peerhub.__version__}"
    assert f"## {peerhub.__version__}" in (ROOT / "CHANGELOG.md").read_text()


async def test_nginx_tls_keeps_the_host_port_for_the_admin_login_and_relays_websockets(
        start_server: StartServer, tmp_path: Path) -> None:
    if nginx_binary() is None:
        missing("nginx is not installed (apt-get install nginx-light)")
    with start_server(PROXY_HEADERS="true", DJANGO_SUPERUSER_PASSWORD=PASSWORD) as server, \
            running_nginx_tls(tmp_path / "nginx", [server.port]) as (_, tls_port, cert):
        origin = f"https://localhost:{tls_port}"
        # No CSRF_TRUSTED_ORIGINS: the Origin matches the Host nginx passes on, port and all.
        manage(server, "createsuperuser", "--noinput", "--username", "ops",
               "--email", "ops@example.test")
        context = ssl.create_default_context(cafile=str(cert))
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context),
                                             urllib.request.HTTPCookieProcessor(jar))
        with opener.open(f"{origin}/admin/login/", timeout=10) as resp:
            page = resp.read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert token is not None
        form = urllib.parse.urlencode({"csrfmiddlewaretoken": token.group(1),
                                       "username": "ops", "password": PASSWORD,
                                       "next": "/admin/"}).encode()
        request = urllib.request.Request(f"{origin}/admin/login/", data=form, headers={
            "Origin": origin, "Referer": f"{origin}/admin/login/"})
        with opener.open(request, timeout=10) as resp:  # redirects to the index
            assert resp.status == 200 and resp.url == f"{origin}/admin/"
            assert "Site administration" in resp.read().decode()

        try:
            opener.open(f"{origin}/metrics", timeout=10)
            raise AssertionError("/metrics was served through nginx")
        except urllib.error.HTTPError as exc:
            assert exc.code == 404

        async with connect(f"wss://localhost:{tls_port}/peerjs?key=peerjs&id=tls1&token=t",
                           ssl=context, open_timeout=10) as ws:
            assert await recv(ws) == {"type": "OPEN"}
