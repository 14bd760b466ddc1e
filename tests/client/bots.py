"""Running the CLI bots as real subprocesses in tests."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from tests.servers import ROOT


@dataclass
class BotProcess:
    process: asyncio.subprocess.Process

    async def next_line(self, timeout: float = 20.0) -> str:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"bot exited with {await self.process.wait()}")
        return line.decode().strip()


def tree_env() -> dict[str, str]:
    """The environment for a subprocess that imports this tree's ``peerhub_client``."""
    paths = [str(ROOT / "client"), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


@asynccontextmanager
async def run_bot(
    bot: str, server: Any, *extra: str, key: str = "peerjs", stderr: int | None = None
) -> AsyncIterator[BotProcess]:
    """Start ``python -m peerhub_client <bot>`` against ``server``; stop it with SIGTERM afterwards."""
    args: Sequence[str] = [sys.executable, "-m", "peerhub_client", bot, "--host", server.host,
                           "--port", str(server.port), "--path", server.path, "--key", key, *extra]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=stderr, env=tree_env()
    )
    try:
        yield BotProcess(proc)
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
