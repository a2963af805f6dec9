"""Twelve tabs of one origin over HTTP/1.1, each following its own stream, in
real Chromium against the demo under gunicorn: without sharing the browser's
six connections per origin stall half of them; with ``shareAcrossTabs`` the
browser holds one stream connection for all twelve, and closing the leader
tab loses and doubles nothing."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import redis

from flask_sse_resilience.store.keys import Keys
from harness.demo_server import Demo, DemoFactory

from .conftest import login

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.slow]

KEYS = Keys("sse:")
STATIC = Path(__file__).resolve().parents[2] / "flask_sse_resilience" / "static"
TABS = 12
TOKENS = 160  # 8 s at 50 ms

START = """async ([count, tokens]) => {
  const urls = [];
  for (let i = 0; i < count; i++) {
    const response = await fetch("/generations", {method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({prompt: "t", tokens, interval_ms: 50})});
    urls.push((await response.json()).streamUrl);
  }
  return urls;
}"""

FOLLOW = """([url, share]) => {
  window.seen = [];
  window.arrivals = [];
  window.source = new SSEResilience.ResilientEventSource(url,
    {shareAcrossTabs: share, from: "start", multiplex: share ? "auto" : false});
  window.source.onevent = (event) => {
    if (event.type !== "token") return;
    window.seen.push(event.data.index);
    window.arrivals.push(performance.now());
  };
}"""


@pytest.fixture
def tabs_demo(demo_factory: DemoFactory, r: redis.Redis) -> Demo:
    return demo_factory(FLASK_SSE_RESILIENCE_MAX_CONNECTIONS_PER_USER="50")


def open_tabs(browser: Any, demo: Demo, urls: list[str], share: bool) -> list[Any]:
    """Open a tab per stream on the app's origin, following it. The page and
    the client script come from the test (no connection), so a tab loads even
    while the browser's six connections to the origin are all taken."""
    script = (STATIC / "sse-resilience.js").read_text()
    html = f"<!doctype html><title>tab</title><script>{script}</script>"
    pages = []
    for url in urls:
        page = browser.new_page()
        page.route(
            f"{demo.base}/lab/tab.html",
            lambda route: route.fulfill(body=html, content_type="text/html"),
        )
        page.goto(f"{demo.base}/lab/tab.html")
        page.evaluate(FOLLOW, [url, share])
        pages.append(page)
    return pages


def counts(pages: list[Any]) -> list[int]:
    return [int(p.evaluate("window.seen.length")) for p in pages]


def live(pages: list[Any]) -> list[int]:
    """Tokens each tab received in one second."""
    first = counts(pages)
    time.sleep(1)
    return [b - a for a, b in zip(first, counts(pages), strict=True)]


def held(r: redis.Redis) -> int:
    """Stream connections the user holds (one lease per response)."""
    return int(r.zcard(KEYS.user_connections("alice")))


def test_twelve_tabs_without_sharing_stall_at_six_connections(
    tabs_demo: Demo, browser: Any, page: Any, r: redis.Redis
) -> None:
    login(page, tabs_demo.base)
    urls = page.evaluate(START, [TABS, 400])
    pages = open_tabs(browser, tabs_demo, urls, share=False)
    time.sleep(2)
    growth = live(pages)
    connections = held(r)
    print(f"12 tabs, no sharing: {connections} connections held; tokens/s {growth}")
    assert connections == 6
    assert sum(g > 0 for g in growth) == 6, growth
    for tab in pages:
        tab.close()


def test_twelve_tabs_share_one_connection_and_survive_the_leader_closing(
    tabs_demo: Demo, browser: Any, page: Any, r: redis.Redis
) -> None:
    login(page, tabs_demo.base)
    urls = page.evaluate(START, [TABS, TOKENS])
    pages = open_tabs(browser, tabs_demo, urls, share=True)
    roles = [p.evaluate("window.source.sharing") for p in pages]
    assert roles.count("leader") == 1, roles
    time.sleep(1.5)
    growth = live(pages)
    connections = held(r)
    print(f"12 tabs, shared: {connections} connection held; tokens/s {growth}")
    assert connections == 1
    assert all(g > 0 for g in growth), growth
    leader = pages.pop(roles.index("leader"))
    closed_at = leader.evaluate("performance.timeOrigin + performance.now()")
    leader.close()
    deadline = time.monotonic() + 30
    while min(counts(pages)) < TOKENS and time.monotonic() < deadline:
        time.sleep(0.2)
    for tab in pages:
        seen = tab.evaluate("window.seen")
        assert seen == list(range(TOKENS))  # nothing lost, nothing doubled
        assert tab.evaluate("window.source.status") == "completed"
    # The handover: the longest silence any tab saw after the leader closed.
    gaps = [
        tab.evaluate(
            """(closed) => {
                 const after = window.arrivals.map((t) => performance.timeOrigin + t)
                   .filter((t) => t >= closed - 100);
                 let gap = 0;
                 for (let i = 1; i < after.length; i++) {
                   gap = Math.max(gap, after[i] - after[i - 1]);
                 }
                 return gap;
               }""",
            closed_at,
        )
        for tab in pages
    ]
    roles = [p.evaluate("window.source.sharing") for p in pages]
    print(
        f"leader closed: a new leader among {len(pages)} tabs "
        f"({roles.count('leader')}); longest silence {max(gaps):.0f} ms"
    )
    assert roles.count("leader") == 1
    for tab in pages:
        tab.close()
