"""The operations dashboard in real headless Chromium, against the demo under
gunicorn with gevent workers (guardian every second, stale after 3 s)."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis
from flask import Flask

from flask_sse_resilience import SSEResilience
from flask_sse_resilience.store.keys import Keys
from harness.demo_server import Demo, DemoFactory
from harness.seeding import fill

from .conftest import ARTIFACTS

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

KEYS = Keys("sse:")


def sign_in(page: Any, demo: Demo, user: str) -> None:
    page.goto(demo.base + "/")
    page.evaluate(
        """user => fetch("/login", {method: "POST",
                     headers: {"Content-Type": "application/json"},
                     body: JSON.stringify({user})})""",
        user,
    )


def text(page: Any, test_id: str) -> str:
    return str(page.get_by_test_id(test_id).text_content())


def row_class(page: Any, sid: str) -> str | None:
    return page.evaluate(  # type: ignore[no-any-return]
        "sid => { const r = document.querySelector(`tr[data-stream-id='${sid}']`);"
        " return r ? r.className : null; }",
        sid,
    )


def test_the_dashboard_shows_what_redis_holds(demo: Demo, page: Any) -> None:
    app = Flask("ops")
    app.config["SSE_RESILIENCE_REDIS_URL"] = demo.redis_url
    sse = SSEResilience(app, guardian_enabled=False)
    ids = [sse.open_stream(f"user{i}", "chat") for i in range(12)]
    client = redis.Redis.from_url(demo.redis_url, decode_responses=True)
    # Keep all but one alive; the last one's producer "dies" now.
    beating = ids[:-1]
    victim = ids[-1]

    def beat() -> None:
        sse.registry(app).heartbeat(beating)

    sign_in(page, demo, "admin")
    # Some traffic for the charts: three generations, each followed.
    page.evaluate(
        """async () => {
          for (let i = 0; i < 3; i++) {
            const r = await fetch("/generations", {method: "POST",
              headers: {"Content-Type": "application/json"},
              body: JSON.stringify({tokens: 600, interval_ms: 50})});
            new EventSource((await r.json()).streamUrl);
          }
        }"""
    )
    page.goto(demo.base + "/sse/_dashboard")
    page.wait_for_function(
        "document.getElementById('status').textContent === 'live'", timeout=10_000
    )
    page.wait_for_function(
        "document.getElementById('count-active').textContent === '15'",
        timeout=10_000,
    )
    assert page.locator("#streams tbody tr").count() == 15
    page.screenshot(path=str(ARTIFACTS / "dashboard-live.png"), full_page=True)
    # Silent for more than half the stale threshold: the row turns amber.
    deadline = time.monotonic() + 15
    warned = False
    while time.monotonic() < deadline:
        beat()
        if row_class(page, victim) == "health-warning":
            warned = True
            break
        time.sleep(0.2)
    assert warned, "the silent stream's row never turned to the warning colour"
    color = page.evaluate(
        "sid => getComputedStyle(document.querySelector("
        "`tr[data-stream-id='${sid}'] td`)).backgroundColor",
        victim,
    )
    assert color == "rgb(255, 241, 194)"  # --warn-bg
    page.screenshot(path=str(ARTIFACTS / "dashboard-warning.png"), full_page=True)
    # Then the guardian (every second in the demo) orphans it: it leaves the
    # table and the orphaned count goes up.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        beat()
        if row_class(page, victim) is None and text(page, "count-orphaned") == "1":
            break
        time.sleep(0.2)
    assert row_class(page, victim) is None
    assert text(page, "count-orphaned") == "1"
    # Both demo workers report (one serves this page), and the events and
    # connects of the generations reach the charts.
    page.wait_for_function(
        "document.querySelectorAll('#workers tbody tr').length === 2"
        " && document.querySelectorAll('#chart-events rect').length === 15"
        " && window.sseDashboard.last().history.some(m => m.events > 0)",
        timeout=10_000,
    )
    assert text(page, "count-active") == "14"
    assert text(page, "sweep").startswith("sweep #")
    # Redis's memory (no maxmemory here: the size alone) and no refusals.
    assert text(page, "redis-memory").endswith("MiB")
    assert text(page, "count-oom") == "0"
    assert client.zscore(KEYS.active_of(victim), victim) is None
    page.screenshot(path=str(ARTIFACTS / "dashboard-orphaned.png"), full_page=True)
    # Server-side sorting: by owner, descending, from the header.
    page.click("th[data-sort='owner']")
    page.click("th[data-sort='owner']")
    page.wait_for_function(
        "document.querySelector('#streams tbody tr td:nth-child(2)')"
        "?.textContent === 'user9'",
        timeout=10_000,
    )
    app.extensions["sse_resilience"].close()
    client.close()


def test_a_non_admin_gets_403(demo: Demo, page: Any) -> None:
    sign_in(page, demo, "mallory")
    response = page.goto(demo.base + "/sse/_dashboard")
    assert response.status == 403
    assert "forbidden" in page.content()


def test_ten_thousand_active_streams(
    demo_factory: DemoFactory, r: redis.Redis, page: Any
) -> None:
    """10,000 active streams: the page shows 50 at a time, sorted and paged on
    the server, and stays responsive (times printed, not asserted)."""
    demo = demo_factory(FLASK_SSE_RESILIENCE_GUARDIAN_ENABLED="false")
    client = redis.Redis.from_url(demo.redis_url, decode_responses=True)
    fill(client, 10_000, 10)
    sign_in(page, demo, "admin")
    started = time.monotonic()
    page.goto(demo.base + "/sse/_dashboard")
    page.wait_for_function(
        "document.getElementById('count-active').textContent === '10000'",
        timeout=20_000,
    )
    first = time.monotonic() - started
    assert page.locator("#streams tbody tr").count() == 50
    assert page.text_content("#page") == "page 1 of 200"
    # The most silent first: every tenth stream is two minutes old.
    assert page.locator("#streams tbody tr.health-stale").count() == 50
    # Both workers report even with the guardian off (one serves this page).
    page.wait_for_function(
        "document.querySelectorAll('#workers tbody tr').length === 2",
        timeout=10_000,
    )
    started = time.monotonic()
    page.click("#next")
    page.wait_for_function(
        "document.getElementById('page').textContent === 'page 2 of 200'",
        timeout=20_000,
    )
    paged = time.monotonic() - started
    started = time.monotonic()
    page.click("th[data-sort='events']")
    page.wait_for_function(
        "window.sseDashboard.last().streams.sort === 'events'", timeout=20_000
    )
    sorted_s = time.monotonic() - started
    took = page.evaluate(
        """() => { const t = performance.now();
                   document.querySelector('#streams').getBoundingClientRect();
                   return performance.now() - t; }"""
    )
    print(
        f"10,000 streams: first view {first:.2f}s, next page {paged:.2f}s, "
        f"sort by events {sorted_s:.2f}s, layout {took:.1f} ms"
    )
    page.screenshot(path=str(ARTIFACTS / "dashboard-10000.png"), full_page=True)
    client.close()
