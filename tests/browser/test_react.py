"""The React hook under real React 19 in Chromium, bundled with esbuild from
the npm package, against the demo under gunicorn with 2 gevent workers:
connect, reconnect after a worker is killed, completion, stop() (a cancel on
the server), an options change (a new token reconnects), unmount (closes);
under <StrictMode>, with the page hidden and shown, unmounting never
cancels: only stop() does."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from flask_sse_resilience.store.keys import Keys
from harness.demo_server import Demo

from .conftest import login, open_lab

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

KEYS = Keys("sse:")
WORDS = ["hello", "resilient", "world"]

START = """async (body) => {
  const response = await fetch("/generations", {method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify({prompt: "hello resilient world", ...body})});
  return await response.json();
}"""


def expected_text(tokens: int) -> str:
    return "".join(f"{WORDS[i % 3]}{i} " for i in range(tokens))


def field(page: Any, name: str) -> str:
    return str(page.eval_on_selector(f"#{name}", "el => el.textContent"))


def wait_for(page: Any, script: str, seconds: float = 20) -> float:
    started = time.monotonic()
    page.wait_for_function(script, timeout=seconds * 1000)
    return time.monotonic() - started


def stream_requests(page: Any) -> list[tuple[str, int]]:
    """Every EventSource response of the page: its URL and the worker."""
    seen: list[tuple[str, int]] = []

    def record(response: Any) -> None:
        if response.request.resource_type == "eventsource":
            seen.append((response.url, int(response.headers.get("x-demo-worker", 0))))

    page.on("response", record)
    return seen


@pytest.fixture
def hook_page(demo: Demo, page: Any, lab_bundles: Path) -> Any:
    login(page, demo.base)
    open_lab(page, demo.base, "react-app", lab_bundles)
    page.wait_for_function("window.hook && typeof window.hook.set === 'function'")
    return page


def test_the_hook_connects_survives_a_killed_worker_and_completes(
    demo: Demo, hook_page: Any
) -> None:
    page = hook_page
    seen = stream_requests(page)
    # The producer runs here, so killing a worker kills only a connection.
    app, sse = demo.producer_app()
    sid = sse.open_stream("alice")

    def produce() -> None:
        with sse.producer(sid, retry_for=10) as out:
            for i in range(80):
                out.send("token", {"text": f"{WORDS[i % 3]}{i} "})
                time.sleep(0.05)
            out.complete({"text": expected_text(80)})

    producer = threading.Thread(target=produce)
    producer.start()
    page.evaluate("(id) => window.hook.set({streamId: id, options: {}})", sid)
    connect = wait_for(page, "document.getElementById('count').textContent > 5")
    worker = seen[-1][1]
    assert worker in demo.workers()
    os.kill(worker, signal.SIGKILL)
    killed = time.monotonic()
    page.wait_for_function(
        "window.hook.statuses.includes('reconnecting')", timeout=10_000
    )
    page.wait_for_function(
        "window.hook.statuses[window.hook.statuses.length - 1] !== 'reconnecting'",
        timeout=15_000,
    )
    back = time.monotonic() - killed
    wait_for(page, "document.getElementById('status').textContent === 'completed'", 30)
    producer.join()
    app.extensions["sse_resilience"].close()
    print(f"React hook: first tokens {connect:.2f} s; back {back:.2f} s after the kill")
    assert field(page, "text") == expected_text(80)  # nothing lost or doubled
    assert field(page, "count") == "80"
    assert seen[-1][1] != worker  # resumed on the other worker


def test_stop_an_options_change_and_unmount(
    demo: Demo, hook_page: Any, r: redis.Redis
) -> None:
    page = hook_page
    seen = stream_requests(page)
    chat = "react-chat"
    first = page.evaluate(START, {"tokens": 400, "interval_ms": 50, "key": chat})
    sid = first["streamId"]
    page.evaluate(
        "([id, token]) => window.hook.set({streamId: id, options: {token}})",
        [sid, first["token"]],
    )
    wait_for(page, "document.getElementById('count').textContent > 3")
    assert f"token={first['token']}" in seen[-1][0]
    # A new token (the same chat joined a second later): the hook reconnects.
    time.sleep(1.1)
    second = page.evaluate(START, {"key": chat, "on_conflict": "join"})
    assert second["streamId"] == sid and second["token"] != first["token"]
    before = len(seen)
    page.evaluate(
        "([id, token]) => window.hook.set({streamId: id, options: {token}})",
        [sid, second["token"]],
    )
    page.wait_for_function(
        "document.getElementById('status').textContent === 'connected'"
    )
    deadline = time.monotonic() + 10
    while len(seen) == before and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert f"token={second['token']}" in seen[-1][0]
    # Equal values in a new object: no reconnect.
    count = len(seen)
    page.evaluate(
        "([id, token]) => window.hook.set({streamId: id, options: {token}})",
        [sid, second["token"]],
    )
    page.wait_for_timeout(500)
    assert len(seen) == count
    text = field(page, "text")
    assert expected_text(400).startswith(text) and text
    # stop(): the stream is cancelled on the server; the hook shows it.
    page.evaluate("window.hook.stop('enough')")
    wait_for(page, "document.getElementById('status').textContent === 'cancelled'")
    assert r.hget(KEYS.stream(sid), "state") == "cancelled"
    # Unmount closes the connection: the stream's follower count drops to 0.
    other = page.evaluate(START, {"tokens": 400, "interval_ms": 50})
    page.evaluate(
        "(id) => window.hook.set({streamId: id, options: {}})", other["streamId"]
    )
    wait_for(page, "document.getElementById('count').textContent > 1")
    assert r.zcard(KEYS.stream_connections(other["streamId"])) == 1
    page.evaluate("window.hook.set(null)")
    deadline = time.monotonic() + 10
    while (
        r.zcard(KEYS.stream_connections(other["streamId"]))
        and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    assert r.zcard(KEYS.stream_connections(other["streamId"])) == 0
    assert r.hget(KEYS.stream(other["streamId"]), "state") == "active"  # not cancelled


def test_unmounting_strict_mode_and_a_hidden_page_never_cancel_only_stop_does(
    demo: Demo, page: Any, lab_bundles: Path, r: redis.Redis
) -> None:
    """The hook by key under <StrictMode> (React's development build: mount,
    unmount, mount), the page hidden and shown again, then unmounted: the
    stream goes on and no cancel is sent. Only ``stop()`` cancels."""
    cancels: list[str] = []
    page.on(
        "request",
        lambda request: (
            cancels.append(request.url)
            if request.method == "POST" and request.url.endswith("/cancel")
            else None
        ),
    )
    login(page, demo.base)
    open_lab(page, demo.base, "react-app-dev", lab_bundles, "?strict=1")
    page.wait_for_function("document.getElementById('status') !== null")
    started = page.evaluate(
        START, {"tokens": 400, "interval_ms": 50, "key": "hook-chat"}
    )
    sid = started["streamId"]
    page.evaluate("window.hook.set({streamId: null, options: {key: 'hook-chat'}})")
    wait_for(page, "document.getElementById('count').textContent > 3")
    page.evaluate(
        """() => {
             const show = (state) => {
               Object.defineProperty(document, "visibilityState",
                                     {configurable: true, get: () => state});
               document.dispatchEvent(new Event("visibilitychange"));
             };
             const page = (type) => window.dispatchEvent(
               new PageTransitionEvent(type, {persisted: true}));
             show("hidden");
             page("pagehide");
             page("pageshow");
             show("visible");
           }"""
    )
    page.wait_for_timeout(300)
    assert field(page, "status") == "connected"
    page.evaluate("window.hook.set(null)")
    deadline = time.monotonic() + 10
    while r.zcard(KEYS.stream_connections(sid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert r.zcard(KEYS.stream_connections(sid)) == 0
    page.wait_for_timeout(300)
    assert r.hget(KEYS.stream(sid), "state") == "active"
    assert cancels == []
    page.evaluate("(id) => window.hook.set({streamId: id, options: {}})", sid)
    wait_for(page, "document.getElementById('count').textContent > 3")
    page.evaluate("window.hook.stop('enough')")
    wait_for(page, "document.getElementById('status').textContent === 'cancelled'")
    assert [url.removeprefix(demo.base) for url in cancels] == [
        f"/sse/streams/{sid}/cancel"
    ]
