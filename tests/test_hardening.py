"""Limits against hostile clients, on a real daphne: each refuses precisely and alone."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from contextlib import AbstractContextManager

from websockets.asyncio.client import ClientConnection

from signalling.protocol import Errors
from tests.servers import LiveServer, manage
from tests.test_metrics import scrape
from tests.waiting import until
from tests.wsclient import closed_with, join, open_socket, recv, send

StartServer = Callable[..., AbstractContextManager[LiveServer]]
OPEN = {"type": "OPEN"}
RATE_REFUSAL = {"type": "ERROR", "payload": {"msg": Errors.IP_RATE}}


def open_websockets(server: LiveServer) -> float:
    """The server's own count of open websockets (``/metrics``)."""
    samples = scrape(server)
    return sum(v for (name, labels), v in samples.items()
               if name == "peerhub_open_sockets" and ("transport", "websocket") in labels)


def limit_counts(server: LiveServer) -> dict[str, int]:
    out = manage(server, "shell", "--no-imports", "-c",
                 "import json; from signalling.models import LimitHit as L; "
                 "print(json.dumps({h.limit: h.count for h in L.objects.all()}))")
    return dict(json.loads(out.splitlines()[-1]))


async def test_sockets_per_address_are_bounded(start_server: StartServer) -> None:
    with start_server(MAX_SOCKETS_PER_IP="3") as server:
        peers = [await join(server, f"p{i}") for i in range(3)]
        extra = await open_socket(server, "p3")
        assert await recv(extra) == {"type": "ERROR", "payload": {"msg": Errors.IP_SOCKETS}}
        assert await closed_with(extra) == 1008
        await send(peers[0], type="OFFER", dst="p1", payload="unaffected")
        assert (await recv(peers[1]))["payload"] == "unaffected"
        await peers[2].close()
        # the close reaches the server's count a moment later; joining before that would
        # be refused (and counted as a second hit)
        await until(lambda: open_websockets(server) == 2, in_thread=True)
        again = await join(server, "p3")
        # the recorder writes the hit on its next round; then it stays at one
        await until(lambda: limit_counts(server).get("per-address"), in_thread=True)
        assert limit_counts(server).get("per-address") == 1
        for ws in (*peers[:2], again):
            await ws.close()


async def test_connection_rate_per_address_is_bounded(start_server: StartServer) -> None:
    # Every connection counts, HTTP included. From an address of its own, so that the
    # start-up check's GETs (from 127.0.0.1, one or more) take none of its 4; and at
    # once, since the bucket gains a token for every second the test takes.
    address = "127.0.0.3"
    with start_server(CONNECT_RATE="1", CONNECT_BURST="4") as server:
        reader, writer = await asyncio.open_connection(server.host, server.port,
                                                       local_addr=(address, 0))
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"HTTP/1.1 200")
        writer.close()
        sockets = await asyncio.gather(*(open_socket(server, f"r{i}", local_addr=(address, 0))
                                         for i in range(4)))
        firsts = [await recv(ws) for ws in sockets]
        refused = [ws for ws, first in zip(sockets, firsts, strict=True) if first != OPEN]
        assert sorted(firsts, key=str) == sorted([OPEN] * 3 + [RATE_REFUSAL], key=str)
        assert await closed_with(refused[0]) == 1008
        for ws in sockets:
            await ws.close()


async def test_sender_with_too_much_queued_for_offline_peers_is_closed(
        start_server: StartServer) -> None:
    with start_server(SENDER_QUEUE_LIMIT="5") as server:
        spammer, honest = await join(server, "S"), await join(server, "H")
        for n in range(5):
            await send(spammer, type="OFFER", dst=f"offline{n}", payload=n)
        await send(honest, type="OFFER", dst="offline0", payload="honest")
        await send(spammer, type="OFFER", dst="offline9", payload=9)
        assert await recv(spammer) == {"type": "ERROR",
                                       "payload": {"msg": Errors.SENDER_QUEUE_FULL}}
        assert await closed_with(spammer) == 1008
        late = await join(server, "offline0")
        # Two senders' sockets are served concurrently: no order between them.
        assert {(await recv(late))["payload"] for _ in range(2)} == {0, "honest"}
        await honest.close()
        await late.close()


async def test_peer_that_never_reads_is_dropped_and_its_id_freed(
        start_server: StartServer) -> None:
    with start_server(SEND_BUFFER_LIMIT="65536", RATE_LIMIT="100000",
                      RATE_BURST="100000") as server:
        slow = await open_socket(server, "SLOW", token="slow", ping_interval=None)
        assert await recv(slow) == {"type": "OPEN"}
        slow.transport.pause_reading()
        sender, other = await join(server, "SENDER"), await join(server, "OTHER")
        # The sender reads what comes back (EXPIREs once SLOW is gone), as a peer would.
        drain = asyncio.create_task(drain_forever(sender))
        chunk = "x" * 30_000
        for _ in range(1500):  # ~45 MB: far beyond the kernel's socket buffers
            await send(sender, type="CANDIDATE", dst="SLOW", payload=chunk)
        await send(sender, type="OFFER", dst="OTHER", payload="fine")
        assert (await recv(other, 20))["payload"] == "fine"
        drain.cancel()
        replacement = await join(server, "SLOW", token="new")
        await replacement.close()
        slow.transport.abort()
        await sender.close()
        await other.close()


async def drain_forever(ws: ClientConnection) -> None:
    async for _ in ws:
        pass


async def test_thousands_of_sockets_from_one_address_work_by_default(
        start_server: StartServer) -> None:
    with start_server() as server:
        sockets: list[ClientConnection] = []
        for start in range(0, 2000, 100):
            sockets += await asyncio.gather(*(join(server, f"office{i}")
                                              for i in range(start, start + 100)))
        await send(sockets[0], type="OFFER", dst="office1999", payload="hello")
        assert (await recv(sockets[1999]))["payload"] == "hello"
        await asyncio.gather(*(ws.close() for ws in sockets))


async def test_tokens_and_sdp_never_reach_the_log(start_server: StartServer) -> None:
    import urllib.error
    import urllib.request

    secret_token, sdp = "SEKRET-TOKEN-123", "v=0 o=- SDP-SECRET-456"
    with start_server() as server:
        a = await join(server, "A", token=secret_token)
        b = await join(server, "B")
        await send(a, type="OFFER", dst="B", payload={"sdp": {"type": "offer", "sdp": sdp}})
        await recv(b)
        for peer in ("A", "nobody"):
            url = f"{server.base_url}peerjs/{peer}/{secret_token}/offer"
            request = urllib.request.Request(url, data=b'{"type":"OFFER","dst":"B"}',
                                             method="POST")
            try:
                await asyncio.to_thread(urllib.request.urlopen, request, timeout=5)
            except urllib.error.HTTPError:
                pass
        await a.close()
        await b.close()
        # the access log line follows the response: wait for both requests' lines
        log = await until(lambda: server.log().count("/offer") >= 2 and server.log())
        assert "/offer" in log  # the requests were logged...
        assert secret_token not in log and "SDP-SECRET" not in log  # ...without secrets
