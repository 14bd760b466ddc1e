"""The session writer against a real database, run as ``python -m tests.writer_cases``
with ``DATABASE_URL`` set (a migrated SQLite file or PostgreSQL database): each case
drives ``SessionRecorder.write`` in this process and prints one JSON line of what the
database then holds, for ``tests/test_session_writer.py`` to check on both backends."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import django

django.setup()

from django.db import connection  # noqa: E402

from signalling import metrics  # noqa: E402
from signalling.models import LimitHit, PeerSession, UsageHour  # noqa: E402
from signalling.sessions import SessionInfo, SessionRecorder  # noqa: E402


class Lines(logging.Handler):
    """The writer's log lines, kept."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def recorder(node: str) -> SessionRecorder:
    rec = SessionRecorder(node)
    rec._ensure_task = lambda: None  # type: ignore[method-assign]  # no event loop here
    return rec


def info(peer_id: str, **fields: Any) -> SessionInfo:
    return SessionInfo(api_key=fields.pop("api_key", "k1"), peer_id=peer_id,
                       transport="websocket", remote_addr="10.0.0.1",
                       user_agent="Mozilla/5.0 test", client_version="1.5.4", **fields)


def row(peer_id: str) -> dict[str, Any]:
    found = PeerSession.objects.filter(peer_id=peer_id).values().get()
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in found.items()}


def usage(node: str) -> list[list[Any]]:
    return [[r.hour.isoformat(), r.api_key, r.connections, r.messages_in, r.messages_out,
             r.heartbeats, r.peak_live]
            for r in UsageHour.objects.filter(node=node).order_by("hour", "api_key")]


def case_rows() -> dict[str, Any]:
    """Open, end, open-and-end in one batch, refresh: every column as written."""
    rec = recorder("rows-node")
    a, b = info("a"), info("b", api_key="k2")
    earlier = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)  # microsecond 0, another hour
    c = info("c", connected_at=earlier)
    for x in (a, b, c):
        rec.opened(x)
    rec.write()
    opened = {p: row(p) for p in "abc"}
    a.messages_in, a.messages_out, a.heartbeats = 7, 5, 2
    rec.closed(a, "closed by the client")
    d = info("d")
    rec.opened(d)
    d.messages_in, d.heartbeats = 3, 1
    rec.closed(d, "x" * 150)  # opened and ended in one batch: one complete INSERT
    rec.write()
    b.messages_in, b.messages_out, b.heartbeats = 11, 13, 4
    rec.write(touch=True)
    return {"opened": opened, "a": row("a"), "b": row("b"), "d": row("d"),
            "times": {"a": [a.connected_at.isoformat(), a.disconnected_at.isoformat()]
                      if a.disconnected_at else None,
                      "c": earlier.isoformat(), "d": d.connected_at.isoformat()},
            "row_ids": [x.row_id for x in (a, b, c, d)],
            "rolled": [x.rolled for x in (a, b, c, d)],
            "usage": usage("rows-node"), "pending": rec.pending, "dropped": rec.dropped}


def case_refused() -> dict[str, Any]:
    """Rows the database refuses next to honest ones: only the bad rows are dropped."""
    log = Lines()
    logging.getLogger("signalling.sessions").addHandler(log)
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("ALTER TABLE signalling_peersession ADD CONSTRAINT no_refused "
                        "CHECK (peer_id <> 'refused-by-db')")
    else:
        with connection.cursor() as cur:
            cur.execute("CREATE TRIGGER no_refused BEFORE INSERT ON signalling_peersession "
                        "WHEN NEW.peer_id = 'refused-by-db' "
                        "BEGIN SELECT RAISE(ABORT, 'refused by the site'); END")
    rec = recorder("refused-node")
    metrics.get_metrics().pending_hits[("k1", "message size")] += 2
    honest = [info(f"honest{n}") for n in range(4)]
    refused = info("refused-by-db")
    negative = info("negative")  # a CHECK of every database: counters are >= 0
    bad = [refused, negative]
    if connection.vendor == "postgresql":  # a DataError and an unencodable text
        bad += [info("too-many"), info("surrogate")]
    for x in (honest[0], *bad, *honest[1:]):
        rec.opened(x)
    negative.messages_in = -1
    rec.closed(negative, "closed")
    if connection.vendor == "postgresql":
        bad[2].messages_in = 2 ** 63  # beyond bigint
        rec.closed(bad[2], "closed")
        bad[3].close_reason = "lone \ud800"  # past SessionInfo's cleaning
    honest[1].messages_in = 9
    rec.closed(honest[1], "closed")
    rec.write()
    first = {"stored": sorted(PeerSession.objects.filter(node="refused-node")
                              .values_list("peer_id", flat=True)),
             "dropped": rec.dropped, "ids": [x.row_id for x in bad],
             "usage": usage("refused-node"),
             "hits": list(LimitHit.objects.values_list("api_key", "limit", "count"))}
    # The next batch (the honest ones ending) is written as usual.
    for x in honest:
        rec.closed(x, "closed")
    rec.write()
    return {**first, "after": usage("refused-node"), "pending": rec.pending,
            "refused_lines": [line for line in log.lines if "refused" in line]}


def case_outage() -> dict[str, Any]:
    """The connection dies mid-batch: the batch is kept, then written once."""
    log = Lines()
    logging.getLogger("signalling.sessions").addHandler(log)
    rec = recorder("outage-node")
    rec.write()  # recovery done, connection open
    infos = [info(f"o{n}") for n in range(3)]
    for x in infos:
        rec.opened(x)
    rec.closed(infos[0], "closed")
    real = SessionRecorder._recover_once

    def die_then_recover(self: SessionRecorder) -> None:
        connection.connection.close()  # the driver's connection goes away mid-transaction
        real(self)

    SessionRecorder._recover_once = die_then_recover  # type: ignore[method-assign]
    try:
        rec.write()
    finally:
        SessionRecorder._recover_once = real  # type: ignore[method-assign]
    kept = {"pending": rec.pending, "outage": rec._outage,
            "ids": [x.row_id for x in infos],
            "rows": PeerSession.objects.filter(node="outage-node").count()}
    rec.write()
    return {"kept": kept, "pending": rec.pending, "outage": rec._outage,
            "rows": sorted(PeerSession.objects.filter(node="outage-node")
                           .values_list("peer_id", "close_reason")),
            "usage": usage("outage-node"), "lines": log.lines}


def case_recovery() -> dict[str, Any]:
    """Rows a crash left open are closed, their messages rolled up, once."""
    start = datetime.now(UTC) - timedelta(minutes=5)
    PeerSession.objects.create(api_key="k1", peer_id="stale", node="crashed-node",
                               connected_at=start, messages_in=4, messages_out=6,
                               heartbeats=1)
    rec = recorder("crashed-node")
    rec.write()
    rec.write()
    return {"row": row("stale"), "usage": usage("crashed-node")}


CASES: dict[str, Callable[[], dict[str, Any]]] = {
    "rows": case_rows, "refused": case_refused, "outage": case_outage,
    "recovery": case_recovery}

if __name__ == "__main__":
    print(json.dumps({"vendor": connection.vendor, **CASES[sys.argv[1]]()}))
