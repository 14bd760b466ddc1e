"""The dashboard and the key list in real Chromium, light and dark, at 1,400 and 1,024 px.

Screenshots are saved under the test's tmp dir; the checks are on what the browser laid
out: axis labels inside their charts, the key list's figures on screen, bars that stand
out from the background in dark mode, the at-limit indicator, the links to a key's
sessions and limit hits, and the three time ranges.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page

from tests.servers import LiveServer, manage
from tests.test_admin_browser import PASSWORD, admin_session, base
from tests.test_apikeys_helpers import StartServer, make_keys
from tests.wsclient import join

pytestmark = pytest.mark.browser

SEED = """
from datetime import timedelta
from django.utils import timezone
from signalling.models import LimitHit, UsageHour
from signalling.rollup import hour_of
now = hour_of(timezone.now())
for h in range(0, 30 * 24, 5):
    UsageHour.objects.create(hour=now - timedelta(hours=h), api_key="busy", node="node-a",
                             connections=150_000 - h * 100, messages_in=400_000,
                             messages_out=380_000, heartbeats=700_000, peak_live=900 + h)
    UsageHour.objects.create(hour=now - timedelta(hours=h), api_key="busy", node="node-b",
                             connections=1_000, messages_in=10, messages_out=10, peak_live=40)
LimitHit.objects.create(api_key="full", limit="concurrent", count=7, last_at=timezone.now())
LimitHit.objects.create(api_key="", limit="invalid key", count=3, last_at=timezone.now())
"""


def luminance(css: str) -> float:
    """Relative luminance of an ``rgb(r, g, b)`` colour."""
    r, g, b = (int(float(x)) / 255 for x in css[css.index("(") + 1:css.index(")")]
               .split(",")[:3])

    def lin(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)


def contrast(a: str, b: str) -> float:
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


async def shot(page: Page, path: Path) -> None:
    await page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 20_000, path  # a page, not a blank


async def labels_inside_charts(page: Page) -> list[Any]:
    """Every y-axis label whose box sticks out of its chart's box (should be none)."""
    return await page.evaluate("""() => [...document.querySelectorAll('svg.peerhub-chart')]
        .flatMap(svg => { const box = svg.getBoundingClientRect();
          return [...svg.querySelectorAll('text.y-label')].map(t => [t.textContent,
            t.getBoundingClientRect().left - box.left]); })
        .filter(([text, dx]) => dx < -0.5)""")


async def right_edges(page: Page, selector: str) -> list[float]:
    return await page.evaluate(
        "s => [...document.querySelectorAll(s)].map(e => e.getBoundingClientRect().right)",
        selector)


async def test_dashboard_and_key_list_read_well_in_light_and_dark_at_two_widths(
        browser: Browser, start_server: StartServer, tmp_path: Path) -> None:
    with start_server(DJANGO_SUPERUSER_PASSWORD=PASSWORD) as server:
        make_keys(server, {"name": "Busy tenant with a long name for wrapping", "key": "busy",
                           "concurrent_limit": 5000},
                  {"name": "Full", "key": "full", "concurrent_limit": 2})
        manage(server, "shell", "--no-imports", "-c", SEED)
        peers = [await join(server, f"f{n}", key="full") for n in range(2)]
        admin, _ = await admin_session(browser, server)
        context = admin.context
        for scheme in ("light", "dark"):
            for width in (1400, 1024):
                page = await context.new_page()
                await page.emulate_media(color_scheme=scheme)  # type: ignore[arg-type]
                await page.set_viewport_size({"width": width, "height": 900})
                await check_dashboard(page, server, scheme, width, tmp_path)
                await check_key_list(page, server, width, tmp_path / f"keys-{scheme}-{width}.png")
                await page.close()
        await check_ranges_and_links(admin, server)
        for ws in peers:
            await ws.close()


async def check_dashboard(page: Page, server: LiveServer, scheme: str, width: int,
                          tmp_path: Path) -> None:
    await page.goto(f"{base(server)}/dashboard/")
    live = page.locator('#key-summary tr[data-key="full"] td.live')
    await eventually_text(page, live, "2 / 2, at limit")
    assert "peerhub-at-limit" in (await live.get_attribute("class") or "")
    assert await page.text_content('#key-summary tr[data-key="busy"] td.connections') == \
        f"{sum(150_000 - h * 100 + 1_000 for h in range(0, 24, 5)):,}"
    # Axis labels: thousands separators, none cut off at the chart's left edge.
    labels = await page.locator('section[data-key="busy"] text.y-label').all_text_contents()
    assert "200,000" in labels and "100,000" in labels, labels
    assert await labels_inside_charts(page) == []
    # Bars stand out from the page in both themes.
    fill = await page.evaluate(
        "() => getComputedStyle(document.querySelector('rect.bar')).fill")
    background = await page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    assert contrast(fill, background) >= 3, (scheme, fill, background)
    # The summary table's figures are on screen at this width.
    edges = await right_edges(page, "#key-summary th")
    assert max(edges) <= width, (width, edges)
    assert await page.locator("#refusals td[data-reason='invalid key']").last.text_content() == "3"
    await shot(page, tmp_path / f"dashboard-{scheme}-{width}.png")


async def eventually_text(page: Page, locator: Any, text: str) -> None:
    async def check() -> bool:
        await page.reload()
        return (await locator.text_content() or "").strip() == text
    for _ in range(50):
        if await check():
            return
    raise AssertionError(f"never saw {text!r}: {await locator.text_content()!r}")


async def check_key_list(page: Page, server: LiveServer, width: int, path: Path) -> None:
    await page.goto(f"{base(server)}/admin/apikeys/apikey/")
    visible = min(width, (await right_edges(page, "#changelist .results"))[0])
    for column in ("live", "sessions", "messages_total"):
        edge = await right_edges(page, f"td.field-{column}")
        assert edge and max(edge) <= visible, (width, column, edge, visible)
    row = page.locator("#result_list tr", has_text="Full")
    assert "2 / 2, at limit" in (await row.locator("td.field-live").text_content() or "")
    await shot(page, path)


async def check_ranges_and_links(page: Page, server: LiveServer) -> None:
    for span, bars in (("24h", 24), ("7d", 28), ("30d", 30)):
        await page.goto(f"{base(server)}/dashboard/?range={span}")
        chart = page.locator('section[data-key="busy"] svg.peerhub-chart').nth(1)
        assert await chart.locator("rect.bar").count() == bars
    await page.goto(f"{base(server)}/dashboard/?node=node-b")
    assert await page.locator("#nodes strong").text_content() == "node-b"
    peaks = page.locator('section[data-key="busy"] svg.peerhub-chart').first
    values = [int(v or 0) for v in await peaks.locator("rect.bar").evaluate_all(
        "bars => bars.map(b => b.dataset.value)")]
    assert max(values) == 40  # node-b's own peak, not the cluster's
    await page.goto(f"{base(server)}/dashboard/")
    await page.click('#key-summary tr[data-key="full"] a:has-text("sessions")')
    await page.wait_for_url("**/admin/signalling/peersession/?key=full")
    assert await page.locator("td.field-api_key, th.field-peer_id").count() >= 2
    await page.goto(f"{base(server)}/dashboard/")
    await page.click('#key-summary tr[data-key="full"] a:has-text("limit hits")')
    await page.wait_for_url("**/admin/signalling/limithit/?key=full")
    assert await page.locator("td.field-count").all_text_contents() == ["7"]

