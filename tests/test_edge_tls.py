"""TLS on the public port: real Chromium running PeerJS 1.5.5 over https and wss.

The test makes a self-signed certificate for 127.0.0.1 and tells Chromium to trust
exactly that key (``--ignore-certificate-errors-spki-list``); two peers register, open a
data connection and exchange data, all signalling over TLS.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import json
import ssl
import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.asyncio.client import connect

from tests.browser_page import connect as connect_peer
from tests.browser_page import create_peer, incoming, open_page, send, wait_event
from tests.conftest import CHROMIUM, CHROMIUM_ARGS, missing
from tests.servers import LiveServer

pytestmark = pytest.mark.browser

StartServer = Callable[..., AbstractContextManager[LiveServer]]


def self_signed(directory: Path) -> tuple[Path, Path, str]:
    """A certificate and key for 127.0.0.1 in ``directory``, and the key's SPKI hash
    (base64 SHA-256, as Chromium's flag takes it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "peerhub test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                 x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    spki = key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    return cert_path, key_path, base64.b64encode(hashlib.sha256(spki).digest()).decode()


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path, str]:
    return self_signed(tmp_path)


@pytest.fixture
async def trusting_browser(certificate: tuple[Path, Path, str]) -> AsyncIterator[Any]:
    """Chromium that trusts the test certificate's key and nothing else extra."""
    if not Path(CHROMIUM).exists():
        missing(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={certificate[2]}"])
        try:
            yield chromium
        finally:
            await chromium.close()


async def test_two_peerjs_peers_meet_over_https_and_wss(
        start_server: StartServer, certificate: tuple[Path, Path, str],
        trusting_browser: Any) -> None:
    cert, key, _ = certificate
    with start_server(TLS_CERT_FILE=str(cert), TLS_KEY_FILE=str(key)) as server:
        assert server.base_url.startswith("https://")
        pages = []
        for name in ("tls-a", "tls-b"):
            page = await open_page(trusting_browser)
            await create_peer(page, server, name, secure=True)
            assert await wait_event(page, "peer", "open") == name
            pages.append(page)
        a, b = pages
        out = await connect_peer(a, "peer", "tls-b", serialization="json", reliable=True)
        assert (await wait_event(b, "peer", "connection"))["peer"] == "tls-a"
        await wait_event(a, out, "open")
        await wait_event(b, incoming("tls-a"), "open")
        await send(a, out, {"over": "tls"})
        got = await wait_event(b, incoming("tls-a"), "data")
        assert got == {"kind": "object", "value": {"over": "tls"}}
        # a server-chosen id came over https too (GET {key}/id)
        page = await open_page(trusting_browser)
        await create_peer(page, server, None, secure=True)
        assert await wait_event(page, "peer", "open")
        log = server.log()
        assert '"WSCONNECT /peerjs"' in log and '"GET /peerjs/id' in log


async def test_tls_port_serves_python_clients_and_refuses_plain_http(
        start_server: StartServer, certificate: tuple[Path, Path, str]) -> None:
    cert, key, _ = certificate
    with start_server(TLS_CERT_FILE=str(cert), TLS_KEY_FILE=str(key)) as server:
        context = ssl.create_default_context(cafile=str(cert))
        with urllib.request.urlopen(server.base_url, context=context, timeout=10) as resp:
            assert json.loads(resp.read())["name"] == "PeerJS Server"
        url = f"wss://127.0.0.1:{server.port}/peerjs?key=peerjs&id=tls-py&token=t"
        async with connect(url, ssl=context, open_timeout=10) as ws:
            assert json.loads(await ws.recv()) == {"type": "OPEN"}
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/", timeout=10).read()


async def test_tls_files_missing_stop_the_start_with_a_clear_error(
        start_server: StartServer, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError) as err, start_server(
            TLS_CERT_FILE=str(tmp_path / "none.pem"), TLS_KEY_FILE=str(tmp_path / "k.pem")):
        pass
    assert "cannot load TLS_CERT_FILE/TLS_KEY_FILE" in str(err.value)
