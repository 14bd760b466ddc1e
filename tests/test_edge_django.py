"""Django behind the edge: the admin through the proxy, the admin's own address, the
access log.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from http.cookies import SimpleCookie

from tests.servers import LiveServer, free_port
from tests.test_edge_limits import honest_pair_relays
from tests.test_front import Raw, http_get, upgrade_request

StartServer = Callable[..., AbstractContextManager[LiveServer]]
IO_TIMEOUT = 10.0


async def request(host: str, port: int, data: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
    raw = Raw(*await asyncio.open_connection(host, port))
    await raw.send(data)
    out = await raw.read_response()
    raw.close()
    return out


async def test_admin_login_round_trip_through_the_proxy(
        peerhub_server: LiveServer) -> None:
    """GET the login page (a cookie and a CSRF token), POST wrong credentials back: Django
    sees the body, the cookie and the client's address, and answers with its form."""
    status, headers, body = await request(peerhub_server.host, peerhub_server.port,
                                          http_get("/admin/login/"))
    assert status == 200 and b'name="csrfmiddlewaretoken"' in body
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', body)
    assert token is not None
    cookie = SimpleCookie(headers[b"set-cookie"].decode())["csrftoken"].value
    form = (f"csrfmiddlewaretoken={token.group(1).decode()}&username=nobody"
            f"&password=wrong&next=/admin/").encode()
    status, _, body = await request(peerhub_server.host, peerhub_server.port, (
        f"POST /admin/login/ HTTP/1.1\r\nHost: x\r\nCookie: csrftoken={cookie}\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(form)}\r\n\r\n").encode() + form)
    assert status == 200 and b"errornote" in body  # the form again, with its error


async def test_static_file_and_keep_alive_mixing_django_and_peerjs(
        peerhub_server: LiveServer) -> None:
    raw = await Raw.connect(peerhub_server)
    await raw.send(http_get("/admin/login/") + http_get("/peerjs/id")
                   + http_get("/static/admin/css/base.css"))
    statuses = [(await raw.read_response())[0] for _ in range(3)]
    raw.close()
    assert statuses == [200, 200, 200]


async def test_admin_on_its_own_address_and_off_on_the_public_port(
        start_server: StartServer) -> None:
    admin_port = free_port()
    with start_server(ADMIN_HOST="127.0.0.1", ADMIN_PORT=str(admin_port),
                      ADMIN_ON_PUBLIC_PORT="false") as server:
        for path in ("/admin/login/", "/admin/", "/dashboard/"):
            status, _, _ = await request(server.host, server.port, http_get(path))
            assert status == 404, path
        status, _, body = await request("127.0.0.1", admin_port, http_get("/admin/login/"))
        assert status == 200 and b'name="csrfmiddlewaretoken"' in body
        status, _, _ = await request("127.0.0.1", admin_port, http_get("/dashboard/"))
        assert status in (200, 302)  # the dashboard (or the login it asks for)
        # the PeerJS websocket is only on the public port
        status, _, _ = await request("127.0.0.1", admin_port, upgrade_request(
            "/peerjs?key=peerjs&id=admin-ws&token=t", base64.b64encode(os.urandom(16))))
        assert status == 403
        await honest_pair_relays(server)


async def test_by_default_the_admin_is_on_the_public_port(peerhub_server: LiveServer) -> None:
    status, _, _ = await request(peerhub_server.host, peerhub_server.port,
                                 http_get("/admin/login/"))
    assert status == 200


async def test_access_log_has_one_line_per_request_and_socket_with_tokens_redacted(
        peerhub_server: LiveServer) -> None:
    marker = f"marker{time.monotonic_ns()}"
    await request(peerhub_server.host, peerhub_server.port,
                  http_get(f"/peerjs/id?{marker}"))
    await request(peerhub_server.host, peerhub_server.port, (
        f"POST /peerjs/peerjs/{marker}/SECRET{marker}/offer HTTP/1.1\r\nHost: x\r\n"
        "Content-Length: 2\r\n\r\n{}").encode())
    deadline = time.monotonic() + IO_TIMEOUT
    while time.monotonic() < deadline:
        log = peerhub_server.log()
        if f"/peerjs/peerjs/{marker}/***/offer" in log:
            break
        await asyncio.sleep(0.1)
    lines = [line for line in log.splitlines() if marker in line]
    assert any(re.search(rf'"GET /peerjs/id\?{marker}" 200 36$', line) for line in lines), lines
    assert f"SECRET{marker}" not in log
    assert len([line for line in lines if "/offer" in line and '"POST' in line]) == 1, lines
