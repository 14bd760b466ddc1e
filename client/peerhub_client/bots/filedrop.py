"""The file-drop bot: browsers put files into a directory and get them back.

Requests and replies are maps sent over a ``binary`` or ``MsgPack`` data connection
(the protocol is documented in ``client/README.md``)::

    {"op": "put", "name": "a.txt", "data": <bytes>}   -> {"op": "put", "ok": true, "name", "size", "sha256"}
    {"op": "get", "name": "a.txt"}                    -> {"op": "get", "ok": true, "name", "size", "data"}
    {"op": "list"}                                    -> {"op": "list", "ok": true, "files": [{"name", "size"}]}
    {"op": "delete", "name": "a.txt"}                 -> {"op": "delete", "ok": true, "name"}

Any failure is ``{"op": <op>, "ok": false, "error": <text>}``. A request's ``"id"`` is
copied into its reply.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from ..dataconnection import DataConnection
from ..errors import PeerError
from ..events import TaskSet
from ..peer import Peer

__all__ = ["FileDropBot", "FileStore", "FileDropError", "handle_request", "safe_name"]

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,127}$")


class FileDropError(ValueError):
    """A request that cannot be served; its text goes back to the client."""


def safe_name(name: Any) -> str:
    """A plain file name (no directories, no leading dot), else ``FileDropError``."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or name.strip() != name:
        raise FileDropError(f"invalid file name {name!r}")
    return name


class FileStore:
    """Files in one directory, written atomically, each at most ``max_bytes``."""

    def __init__(self, root: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.root = root
        self.max_bytes = max_bytes
        root.mkdir(parents=True, exist_ok=True)

    def put(self, name: str, data: bytes) -> dict[str, Any]:
        if len(data) > self.max_bytes:
            raise FileDropError(f"file too large: {len(data)} > {self.max_bytes} bytes")
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".upload-")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, self.root / safe_name(name))
        return {"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    def get(self, name: str) -> bytes:
        path = self.root / safe_name(name)
        if not path.is_file():
            raise FileDropError(f"no such file: {name}")
        return path.read_bytes()

    def list(self) -> list[dict[str, Any]]:
        files = sorted(p for p in self.root.iterdir() if p.is_file() and _NAME_RE.match(p.name))
        return [{"name": p.name, "size": p.stat().st_size} for p in files]

    def delete(self, name: str) -> None:
        path = self.root / safe_name(name)
        if not path.is_file():
            raise FileDropError(f"no such file: {name}")
        path.unlink()


def handle_request(store: FileStore, request: Any) -> dict[str, Any]:
    """The reply to one request (blocking file IO: run it in a thread)."""
    if not isinstance(request, dict):
        return {"ok": False, "error": "requests are maps with an 'op'"}
    op = request.get("op")
    reply: dict[str, Any] = {"op": op}
    if "id" in request:
        reply["id"] = request["id"]
    try:
        reply.update(_dispatch(store, op, request), ok=True)
    except FileDropError as exc:
        reply.update(ok=False, error=str(exc))
    except OSError as exc:
        log.warning("file-drop %s failed: %s", op, exc)
        reply.update(ok=False, error=f"storage error: {exc.strerror or exc}")
    return reply


def _dispatch(store: FileStore, op: Any, request: dict[str, Any]) -> dict[str, Any]:
    name = request.get("name")
    if op == "put":
        data = request.get("data")
        if not isinstance(data, bytes):
            raise FileDropError("'data' must be binary (an ArrayBuffer or typed array)")
        return store.put(safe_name(name), data)
    if op == "get":
        data = store.get(safe_name(name))
        return {"name": name, "size": len(data), "data": data}
    if op == "list":
        return {"files": store.list()}
    if op == "delete":
        store.delete(safe_name(name))
        return {"name": name}
    raise FileDropError(f"unknown op {op!r} (use put, get, list or delete)")


class FileDropBot:
    """Attach to a ``Peer``: serves ``FileStore`` requests on every data connection."""

    def __init__(self, peer: Peer, store: FileStore) -> None:
        self.peer = peer
        self.store = store
        self.tasks = TaskSet("filedrop")
        peer.on("connection", self.on_connection)
        peer.on("close", lambda: self.tasks.cancel_all())

    def on_connection(self, conn: DataConnection) -> None:
        log.info("file-drop connection from %s (%s)", conn.peer, conn.serialization)
        if conn.serialization not in ("binary", "MsgPack"):
            log.info("%s uses %s; file-drop needs binary or MsgPack", conn.peer, conn.serialization)
        self.tasks.spawn(self.serve(conn), f"serve-{conn.connection_id}")

    async def serve(self, conn: DataConnection) -> None:
        """Answer the connection's requests one at a time, in the order they arrive."""
        async for request in conn:
            reply = await asyncio.to_thread(handle_request, self.store, request)
            if not conn.open:
                return
            conn.send(reply)
            try:
                await conn.drain()  # a large ``get`` reply waits until the channel has room
            except PeerError:
                return  # closed meanwhile
