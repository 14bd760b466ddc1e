"""``LOG_FORMAT=json``: one JSON object per line; refusal lines name key, reason, address."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager

from peerhub.logformat import JsonFormatter
from peerhub.logredact import RedactTokensFilter
from tests.servers import LiveServer, manage
from tests.wsclient import open_socket, recv


def json_lines(log: str) -> list[dict[str, object]]:
    """Every line of ``log`` that is a JSON object."""
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


async def test_json_log_lines_name_key_reason_and_address(
        start_server: Callable[..., AbstractContextManager[LiveServer]]) -> None:
    with start_server(LOG_FORMAT="json", DAPHNE_VERBOSITY="0") as server:
        manage(server, "createkey", "Strict", "--key", "strict", "--origin",
               "https://ok.example")
        ws = await open_socket(server, "p1", key="strict",
                               additional_headers={"Origin": "https://evil.example"})
        assert (await recv(ws))["type"] == "ERROR"
        ws = await open_socket(server, "p2", key="no-such-key")
        assert (await recv(ws))["type"] == "INVALID-KEY"
        server.stop()
        log = server.log()
    lines = json_lines(log)
    assert lines, log
    for line in lines:
        assert {"time", "level", "logger", "message"} <= set(line)
    refusals = {(r["api_key"], r["reason"], r["address"]) for r in lines if "reason" in r}
    assert ("strict", "origin", "127.0.0.1") in refusals
    assert ("no-such-key", "invalid key", "127.0.0.1") in refusals
    # Everything Python logs is JSON; only the start-up print lines are not.
    others = [ln for ln in log.splitlines() if ln and not ln.startswith("{")]
    assert all(ln.startswith("peerhub") for ln in others), others


def test_json_lines_keep_tokens_redacted() -> None:
    record = logging.LogRecord("x", logging.INFO, "f", 1, "GET %s", ("/k/id1/SECRETTOK/offer",),
                               None)
    RedactTokensFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert "SECRETTOK" not in json.dumps(line)
    assert line["message"] == "GET /k/id1/***/offer"


def test_json_exceptions_keep_tokens_redacted() -> None:
    try:
        raise ValueError("bad request /k/id1/SECRETTOK/offer?token=SECRET2")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, "f", 1, "failed", None, sys.exc_info())
    RedactTokensFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert "ValueError" in line["exception"]
    assert "SECRETTOK" not in line["exception"] and "SECRET2" not in line["exception"]
