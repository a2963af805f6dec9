"""The browser client in real headless Chromium against the demo under
gunicorn with 2 gevent workers: it never loses the result."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import pytest

from harness.demo_server import Demo, DemoFactory
from harness.redis_server import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

WORDS = ["hello", "resilient", "world"]


def expected_text(tokens: int) -> str:
    return "".join(f"{WORDS[i % 3]}{i} " for i in range(tokens))


def start(page: Any, demo: Demo, tokens: int, interval_ms: int) -> None:
    page.goto(demo.base + "/")
    page.fill("#tokens", str(tokens))
    page.fill("#interval", str(interval_ms))
    page.click("button")
    page.wait_for_function("window.demo.source !== null", timeout=10_000)


def wait_status(page: Any, status: str, seconds: float = 20) -> float:
    started = time.monotonic()
    page.wait_for_function(
        f"document.getElementById('status').textContent === '{status}'",
        timeout=seconds * 1000,
    )
    return time.monotonic() - started


def text(page: Any, selector: str) -> str:
    return str(page.eval_on_selector(selector, "el => el.textContent"))


def eventsource_workers(page: Any) -> list[int]:
    """Record the worker answering each EventSource request of the page."""
    workers: list[int] = []

    def seen(response: Any) -> None:
        if response.request.resource_type == "eventsource":
            worker = response.headers.get("x-demo-worker")
            if worker:
                workers.append(int(worker))

    page.on("response", seen)
    return workers


def test_a_generation_streams_to_completion_then_survives_a_reload(
    demo: Demo, page: Any
) -> None:
    start(page, demo, tokens=20, interval_ms=30)
    wait_status(page, "completed")
    assert text(page, "#output") == expected_text(20)
    assert text(page, "#result") == expected_text(20)
    # Reload after completion: the result shows without any SSE connection.
    requests: list[str] = []
    page.on(
        "request",
        lambda r: requests.append(r.url) if r.resource_type == "eventsource" else None,
    )
    page.reload()
    wait_status(page, "completed", 10)
    assert text(page, "#result") == expected_text(20)
    assert requests == []
    assert page.evaluate("window.demo.statuses") == ["connecting", "completed"]


def test_killing_the_worker_serving_the_page_loses_and_doubles_nothing(
    demo: Demo, page: Any
) -> None:
    # The demo's timings: a 15 s heartbeat here once let its guardian
    # (stale after 3 s) orphan this stream on a loaded machine.
    app, sse = demo.producer_app()
    workers = eventsource_workers(page)
    page.goto(demo.base + "/")
    page.evaluate(
        """fetch("/login", {method: "POST",
                            headers: {"Content-Type": "application/json"},
                            body: JSON.stringify({user: "alice"})})"""
    )
    sid = sse.open_stream("alice")
    texts = [f"t{i} " for i in range(60)]

    def produce() -> None:
        with sse.producer(sid, retry_for=10) as out:
            for piece in texts:
                out.send("token", {"text": piece})
                time.sleep(0.05)
            out.complete({"text": "".join(texts)})

    page.goto(f"{demo.base}/?stream={sid}")
    producer = threading.Thread(target=produce)
    producer.start()
    page.wait_for_function(
        "document.getElementById('output').textContent.length > 20", timeout=10_000
    )
    assert workers, "no EventSource response seen"
    os.kill(workers[0], signal.SIGKILL)
    wait_status(page, "completed", 30)
    producer.join()
    assert text(page, "#output") == "".join(texts)
    assert text(page, "#result") == "".join(texts)
    assert "reconnecting" in page.evaluate("window.demo.statuses")
    assert len(workers) >= 2 and workers[-1] != workers[0]
    app.extensions["sse_resilience"].close()


def test_a_killed_producer_shows_failed_within_the_guardian_delay(
    demo: Demo, page: Any
) -> None:
    start(page, demo, tokens=500, interval_ms=100)
    page.wait_for_function(
        "document.getElementById('output').textContent.length > 10", timeout=10_000
    )
    producer = int(page.evaluate("window.demo.producerWorker"))
    os.kill(producer, signal.SIGKILL)
    delay = wait_status(page, "failed", 15)
    assert delay < 6, f"failed state shown {delay:.1f}s after kill -9"
    assert "orphaned" in text(page, "#result")


def test_redis_down_for_seconds_shows_reconnecting_then_completes(
    demo_factory: DemoFactory, redis_factory: type[RedisServer], page: Any
) -> None:
    server = redis_factory()
    demo = demo_factory(redis_url=server.url)
    start(page, demo, tokens=60, interval_ms=100)
    page.wait_for_function(
        "document.getElementById('output').textContent.length > 20", timeout=10_000
    )
    port = server.port
    server.client().save()
    server.kill()
    wait_status(page, "reconnecting", 10)
    time.sleep(3)
    server.port = port
    server.start()
    wait_status(page, "completed", 40)
    assert text(page, "#output") == expected_text(60)
    assert text(page, "#result") == expected_text(60)


def test_backoff_schedule_bounds_jitter_and_cap(demo: Demo, page: Any) -> None:
    page.goto(demo.base + "/")
    result = page.evaluate(
        """() => {
        const d = SSEResilience.backoffDelay;
        const top = () => 0.999999, bottom = () => 0;
        const ceilings = [0, 1, 2, 3, 4, 5, 6, 10, 50].map(a => d(a, 500, 15000, top));
        const floors = [0, 3, 10].map(a => d(a, 500, 15000, bottom));
        const samples = Array.from({length: 2000}, () => d(3, 500, 15000));
        return {ceilings, floors, min: Math.min(...samples), max: Math.max(...samples),
                distinct: new Set(samples).size,
                defaults: SSEResilience.DEFAULTS};
    }"""
    )
    assert result["ceilings"] == [
        499,
        999,
        1999,
        3999,
        7999,
        14999,
        14999,
        14999,
        14999,
    ]
    assert result["floors"] == [0, 0, 0]
    assert 0 <= result["min"] < 400 and 3600 < result["max"] < 4000  # full jitter
    assert result["distinct"] > 1000
    assert result["defaults"]["baseDelayMs"] == 500
    assert result["defaults"]["maxDelayMs"] == 15000


FOLLOW = """
(url) => {
  window.got = [];
  window.source = new SSEResilience.ResilientEventSource(url, {persist: true});
  window.source.onevent = (event) => window.got.push(event);
}
"""


def producing_app(demo: Demo, page: Any) -> tuple[Any, Any, str]:
    """An app of our own producing for the demo's Redis, a stream it opened
    for alice, and the page signed in as alice on the demo."""
    app, sse = demo.producer_app()
    page.goto(demo.base + "/")
    page.evaluate(
        """fetch("/login", {method: "POST",
                            headers: {"Content-Type": "application/json"},
                            body: JSON.stringify({user: "alice"})})"""
    )
    return app, sse, sse.open_stream("alice", app=app)


def test_persisted_position_resumes_after_a_reload(demo: Demo, page: Any) -> None:
    app, sse, sid = producing_app(demo, page)
    url = f"/sse/streams/{sid}"

    def produce() -> None:
        with sse.producer(sid) as out:
            for i in range(40):
                out.send("token", {"i": i})
                time.sleep(0.05)
            out.complete({"n": 40})

    page.evaluate(FOLLOW, url)
    producer = threading.Thread(target=produce)
    producer.start()
    page.wait_for_function("window.got.length >= 10", timeout=10_000)
    before = page.evaluate("window.source.close(), window.got")
    page.reload()  # the page's memory is gone; sessionStorage is not
    page.evaluate(FOLLOW, url)
    page.wait_for_function(
        "window.got.length && window.got[window.got.length - 1].type === 'completed'",
        timeout=15_000,
    )
    after = page.evaluate("window.got")
    producer.join()
    numbers = [e["data"]["i"] for e in before + after if e["type"] == "token"]
    assert numbers == list(range(40))  # nothing lost, nothing doubled
    assert page.evaluate(f"sessionStorage.getItem('sse-resilience:{url}')") is None
    app.extensions["sse_resilience"].close()


def test_a_position_held_past_the_end_gets_the_rest_not_just_the_end(
    demo: Demo, page: Any
) -> None:
    """docs/protocol.rst, client algorithm 1 and 5: a client with a position
    connects (never the /recover shortcut) and gets every event after it; a
    client whose position is the terminal event is answered 204 and stops."""
    app, sse, sid = producing_app(demo, page)
    url = f"/sse/streams/{sid}"
    out = sse.producer(sid).__enter__()
    for i in range(10):
        out.send("token", {"i": i})
    page.evaluate(FOLLOW, url)
    page.wait_for_function("window.got.length >= 10", timeout=10_000)
    before = page.evaluate("window.source.close(), window.got")
    for i in range(10, 30):  # while the page is away, the stream ends
        out.send("token", {"i": i})
    out.complete({"n": 30})
    out.__exit__(None, None, None)
    page.reload()
    page.evaluate(FOLLOW, url)
    page.wait_for_function(
        "window.got.length && window.got[window.got.length - 1].type === 'completed'",
        timeout=15_000,
    )
    after = page.evaluate("window.got")
    numbers = [e["data"]["i"] for e in before + after if e["type"] == "token"]
    assert numbers == list(range(30))  # the rest, not only the terminal event
    # Holding the terminal event's id: a 204, and the client stops completed.
    terminal_id = after[-1]["id"]
    page.evaluate(
        "([url, id]) => sessionStorage.setItem('sse-resilience:' + url, id)",
        [url, terminal_id],
    )
    page.evaluate(FOLLOW + "", url)
    page.wait_for_function("window.source.status === 'completed'", timeout=10_000)
    assert page.evaluate("window.got") == []
    app.extensions["sse_resilience"].close()


def test_connections_rotate_and_the_text_stays_exact(
    demo_factory: DemoFactory, page: Any
) -> None:
    """A 1 s maximum connection age over a 4 s generation: the page's
    EventSource is replaced several times, the text is exact."""
    demo = demo_factory(FLASK_SSE_RESILIENCE_MAX_CONNECTION_AGE="1")
    workers = eventsource_workers(page)
    start(page, demo, tokens=80, interval_ms=50)
    wait_status(page, "completed", 30)
    assert text(page, "#output") == expected_text(80)
    assert text(page, "#result") == expected_text(80)
    assert len(workers) >= 3  # rotated at least twice
