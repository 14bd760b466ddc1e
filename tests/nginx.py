"""Running Debian's nginx with the project's own configuration, for tests."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.servers import ROOT, free_port
from tests.services import reachable

CONFIG = ROOT / "deploy" / "nginx-peerhub.conf"


def nginx_binary() -> str | None:
    """Path of the nginx executable, if installed."""
    return shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                     else None)


def site_config(listen_port: int, upstream_ports: list[int]) -> str:
    """deploy/nginx-peerhub.conf with its listen and upstream ports replaced."""
    text = CONFIG.read_text()
    text = re.sub(r"listen 80;", f"listen 127.0.0.1:{listen_port};", text)
    servers = "".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;\n"
                      for p in upstream_ports)
    return re.sub(r"(    server 127\.0\.0\.1:\d+ [^\n]*\n)+", servers, text, count=1)


@contextmanager
def running_nginx(directory: Path, upstream_ports: list[int]) -> Iterator[int]:
    """Run nginx in the foreground with the site config; yield the port it listens on."""
    exe = nginx_binary()
    assert exe is not None
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "site.conf").write_text(site_config(port, upstream_ports))
    (directory / "nginx.conf").write_text(
        ("user root;\n" if os.geteuid() == 0 else "")
        + f"worker_processes 1;\npid {directory}/nginx.pid;\nerror_log {directory}/error.log;\n"
        f"events {{ worker_connections 4096; }}\n"
        f"http {{\n  access_log {directory}/access.log;\n"
        f"  client_body_temp_path {directory}/body;\n  proxy_temp_path {directory}/proxy;\n"
        f"  include {directory}/site.conf;\n}}\n")
    proc = subprocess.Popen([exe, "-c", str(directory / "nginx.conf"), "-p", str(directory),
                             "-g", "daemon off;"], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while not reachable("127.0.0.1", port):
            if proc.poll() is not None:
                raise RuntimeError(f"nginx failed: {proc.stderr.read() if proc.stderr else ''}")
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)
