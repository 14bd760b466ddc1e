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


def site_config(listen_port: int, upstream_ports: list[int], tls_port: int | None = None,
                cert: Path | None = None, key: Path | None = None) -> str:
    """deploy/nginx-peerhub.conf with its listen and upstream ports replaced; without
    ``tls_port`` its TLS listener and certificate lines are left out."""
    text = CONFIG.read_text()
    text = re.sub(r"listen 80;", f"listen 127.0.0.1:{listen_port};", text)
    if tls_port is None:
        text = re.sub(r"\n *(listen 443 [^\n]*|ssl_[^\n]*)", "", text)
    else:
        text = re.sub(r"listen 443 ", f"listen 127.0.0.1:{tls_port} ", text)
        text = re.sub(r"^( +)ssl_certificate +[^;\n]+;", rf"\1ssl_certificate {cert};", text,
                      flags=re.M)
        text = re.sub(r"^( +)ssl_certificate_key +[^;\n]+;", rf"\1ssl_certificate_key {key};",
                      text, flags=re.M)
    servers = "".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;\n"
                      for p in upstream_ports)
    return re.sub(r"(    server 127\.0\.0\.1:\d+ [^\n]*\n)+", servers, text, count=1)


def self_signed_certificate(directory: Path, host: str = "localhost") -> tuple[Path, Path]:
    """A throw-away certificate and key for ``host`` (openssl)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", f"/CN={host}", "-addext", f"subjectAltName=DNS:{host},IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


@contextmanager
def running_nginx(directory: Path, upstream_ports: list[int]) -> Iterator[int]:
    """Run nginx in the foreground with the site config; yield the port it listens on."""
    with _nginx(directory, upstream_ports, tls=False) as (port, _):
        yield port


@contextmanager
def running_nginx_tls(directory: Path, upstream_ports: list[int]
                      ) -> Iterator[tuple[int, int, Path]]:
    """The same with its TLS listener too: yield (http port, https port, certificate)."""
    with _nginx(directory, upstream_ports, tls=True) as (port, tls):
        yield port, tls, directory / "cert.pem"


@contextmanager
def _nginx(directory: Path, upstream_ports: list[int], tls: bool) -> Iterator[tuple[int, int]]:
    exe = nginx_binary()
    assert exe is not None
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    tls_port = free_port() if tls else 0
    if tls:
        cert, key = self_signed_certificate(directory)
        config = site_config(port, upstream_ports, tls_port, cert, key)
    else:
        config = site_config(port, upstream_ports)
    (directory / "site.conf").write_text(config)
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
        yield port, tls_port
    finally:
        proc.terminate()
        proc.wait(10)
