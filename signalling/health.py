"""``GET /healthz`` and ``GET /readyz`` as plain ASGI apps, for load balancers.

- ``/healthz``: the process is alive and its event loop turns: 200, ``{"status": "ok",
  "node": NAME}``.
- ``/readyz``: this node can admit peers: the database answers and, in a cluster, Redis
  answers and this node's channel is subscribed; 503 with the failing checks otherwise,
  and 503 ``draining`` from SIGTERM on. A load balancer that polls it stops sending new
  peers to a node that is restarting or cut off.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
from django.db import DatabaseError, close_old_connections, connection

logger = logging.getLogger(__name__)

CHECK_TIMEOUT = 2.0
_SUBSCRIBE_GRACE = 1.0


def _database_answers() -> bool:
    close_old_connections()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        logger.warning("readiness: the database does not answer (%s)", exc)
        connection.close()
        return False
    return True


class ReadinessProbe:
    """Runs the readiness checks; owns the one thread the database check uses."""

    def __init__(self) -> None:
        self._db_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="peerhub-ready")

    async def checks(self) -> dict[str, bool]:
        """Each check's outcome (all true: ready)."""
        from signalling.node import get_node

        node = get_node()
        result = {"accepting": not node.draining}
        loop = asyncio.get_running_loop()
        try:
            result["database"] = await asyncio.wait_for(
                loop.run_in_executor(self._db_thread, _database_answers), CHECK_TIMEOUT)
        except TimeoutError:
            result["database"] = False
        hub = node.hub
        if hub.clustered:
            hub.start()
            try:
                result["redis"] = await asyncio.wait_for(hub.ping(), CHECK_TIMEOUT)
            except TimeoutError:
                result["redis"] = False
            if not hub.subscribed and result["redis"]:
                await hub.wait_subscribed(_SUBSCRIBE_GRACE)
            result["subscribed"] = hub.subscribed
        return result


async def _answer(send: Any, status: int, body: dict[str, Any]) -> None:
    payload = orjson.dumps(body)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode()),
                            (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": payload})


async def _read_request(receive: Any) -> None:
    while True:
        event = await receive()
        if event["type"] != "http.request" or not event.get("more_body"):
            return


async def healthz(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """200 while the process serves."""
    from signalling.node import get_node

    await _read_request(receive)
    await _answer(send, 200, {"status": "ok", "node": get_node().name})


async def readyz(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """200 when this node can admit peers, else 503 naming what fails."""
    from signalling.node import get_node

    await _read_request(receive)
    node = get_node()
    checks = await node.probe.checks()
    ready = all(checks.values())
    status = "ready" if ready else ("draining" if not checks["accepting"] else "unavailable")
    await _answer(send, 200 if ready else 503,
                  {"status": status, "node": node.name, "checks": checks})


#: Exact paths served by these apps (for the edge's route table).
ROUTES = {"/healthz": healthz, "/readyz": readyz}
