"""The usage dashboard: server-drawn SVG charts, figures derived from sessions, staff only."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

import pytest
from django.test import Client

from apikeys.charts import ChartError, bar_chart, nice_ceiling
from apikeys.models import ApiKey
from apikeys.usage import hour_starts, total_usage, usage_report
from signalling import rollup
from signalling.models import PeerSession
from tests.test_apikeys_helpers import StartServer

SVG = "{http://www.w3.org/2000/svg}"
NOW = datetime(2026, 11, 25, 14, 37, tzinfo=UTC)
LABELS = [f"{h:02d}:00" for h in range(24)]


def bars(svg: str) -> list[ElementTree.Element]:
    return list(ElementTree.fromstring(svg).iter(f"{SVG}rect"))


# --- charts (pure) ---------------------------------------------------------------------

def test_chart_is_well_formed_svg_with_one_titled_bar_per_hour() -> None:
    values = list(range(24))
    svg = bar_chart(values, LABELS, "Connections", "connections")
    found = bars(svg)
    assert [int(b.get("data-value", "-1")) for b in found] == values
    assert found[5].findtext(f"{SVG}title") == "05:00: 5 connections"
    heights = [float(b.get("height", "0")) for b in found]
    assert heights == sorted(heights) and heights[0] == 0 and heights[-1] > 0


def test_chart_scales_to_a_round_top_and_draws_zeroes_flat() -> None:
    assert [nice_ceiling(v) for v in (0, 1, 3, 7, 11, 99, 101, 4000)] == [
        1, 1, 5, 10, 20, 100, 200, 5000]
    svg = bar_chart([0] * 24, LABELS, "Nothing", "messages")
    assert all(float(b.get("height", "1")) == 0 for b in bars(svg))
    assert ">1</text>" in svg  # the y-axis top of an empty chart


def test_chart_escapes_every_label_and_needs_nothing_from_outside() -> None:
    svg = bar_chart([1], ["<b>&"], 'Key "<script>alert(1)</script>"', "x<y")
    ElementTree.fromstring(svg)  # still well-formed
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert "<b>" not in svg
    assert not re.search(r"(href|src)=", svg)


def test_chart_refuses_mismatched_or_negative_input() -> None:
    with pytest.raises(ChartError):
        bar_chart([1, 2], ["a"], "t", "u")
    with pytest.raises(ChartError):
        bar_chart([], [], "t", "u")
    with pytest.raises(ChartError):
        bar_chart([-1], ["a"], "t", "u")


def test_hour_window_ends_with_the_current_hour() -> None:
    hours = hour_starts(NOW)
    assert len(hours) == 24
    assert hours[-1] == datetime(2026, 11, 25, 14, tzinfo=UTC)
    assert hours[0] == datetime(2026, 11, 24, 15, tzinfo=UTC)


# --- figures derived from the session rows ------------------------------------------------

def session(key: str, connected: datetime, inn: int = 0, out: int = 0) -> PeerSession:
    return PeerSession(api_key=key, peer_id="p", node="n", connected_at=connected,
                       messages_in=inn, messages_out=out)


@pytest.mark.django_db
def test_usage_counts_connections_and_messages_in_the_hour_they_connected() -> None:
    ApiKey.objects.create(name="alpha", key="alpha")
    ApiKey.objects.create(name="quiet", key="quiet", active=False)
    PeerSession.objects.bulk_create([
        session("alpha", NOW - timedelta(minutes=5), 3, 4),       # this hour
        session("alpha", NOW - timedelta(minutes=30), 1, 0),      # this hour
        session("alpha", NOW - timedelta(hours=3), 10, 10),       # 11:xx
        session("alpha", NOW - timedelta(hours=30), 99, 99),      # outside the window
        session("ghost", NOW - timedelta(hours=1), 2, 2),         # a deleted key
    ])
    rollup.rebuild()  # rows written by bulk_create, not by the session writer
    report = {u.key: u for u in usage_report(NOW, {"alpha": 2})}
    alpha = report["alpha"]
    assert alpha.live == 2 and alpha.active and alpha.exists
    assert alpha.connections[-1] == 2 and alpha.messages[-1] == 8
    assert alpha.connections[-4] == 1 and alpha.messages[-4] == 20
    assert alpha.total_connections == 3 and alpha.total_messages == 28
    assert report["quiet"].total_connections == 0 and not report["quiet"].active
    assert report["ghost"].name == "(deleted key)" and not report["ghost"].exists
    total = total_usage(list(report.values()))
    assert total.total_connections == 4 and total.live == 2
    assert list(report)[0] == "alpha"  # busiest (live) first


@pytest.mark.django_db
def test_dashboard_is_for_staff_only() -> None:
    from django.contrib.auth.models import User

    client = Client()
    response = client.get("/dashboard/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    User.objects.create_user("plain", password="pw-plain-123")
    client.login(username="plain", password="pw-plain-123")
    assert client.get("/dashboard/").status_code == 302
    User.objects.create_user("staff", password="pw-staff-123", is_staff=True)
    client.login(username="staff", password="pw-staff-123")
    response = client.get("/dashboard/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "<svg" in page and "Usage dashboard" in page
    assert "<script" not in page.split('<div id="content-main">')[1]
    assert not re.search(r'(src|href)="https?://', page)  # nothing from elsewhere


# --- the real server --------------------------------------------------------------------

def test_dashboard_and_admin_assets_are_served_by_daphne(start_server: StartServer) -> None:
    with start_server() as server:
        base = f"http://{server.host}:{server.port}"
        with urllib.request.urlopen(f"{base}/dashboard/", timeout=5) as resp:  # redirected
            assert resp.url.endswith("/admin/login/?next=/dashboard/")
        with urllib.request.urlopen(f"{base}/static/admin/css/base.css", timeout=5) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/css")
            assert "max-age" in resp.headers["Cache-Control"]
            assert len(resp.read()) == int(resp.headers["Content-Length"])
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{base}/static/admin/nope.css", timeout=5)
        assert missing.value.code == 404
