"""The Stop button and finding a chat's generation by key after a reload, in
real headless Chromium against the demo under gunicorn (2 gevent workers)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from harness.demo_server import Demo, DemoFactory

from .test_client import text, wait_status

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def start_chat(page: Any, demo: Demo, chat: str, tokens: int, interval_ms: int) -> None:
    page.goto(demo.base + "/")
    page.fill("#tokens", str(tokens))
    page.fill("#interval", str(interval_ms))
    page.fill("#chat", chat)
    page.click("button")
    page.wait_for_function("window.demo.source !== null", timeout=10_000)


def tokens_seen(page: Any) -> int:
    return int(
        page.evaluate("window.demo.events.filter(e => e.type === 'token').length")
    )


def test_reload_finds_the_chat_by_key_and_stop_stops_it(demo: Demo, page: Any) -> None:
    start_chat(page, demo, "chat-7", tokens=2000, interval_ms=20)
    first = page.evaluate("window.demo.streamId")
    page.wait_for_function("window.demo.events.length >= 10", timeout=10_000)
    assert "chat=chat-7" in page.url
    page.reload()  # the page lost the stream id; the key finds it
    page.wait_for_function("window.demo.found !== undefined", timeout=10_000)
    assert page.evaluate("window.demo.found.streamId") == first
    assert page.evaluate("window.demo.found.status") == "active"
    wait_status(page, "connected", 10)
    page.wait_for_function("window.demo.events.length >= 5", timeout=10_000)
    clicked = time.monotonic()
    page.click("#stop")
    wait_status(page, "cancelled", 10)
    took = time.monotonic() - clicked
    events = page.evaluate("window.demo.events")
    assert [e["type"] for e in events].count("cancelled") == 1
    end = events[-1]["data"]
    assert (end["by"], end["reason"]) == ("user", "stop button")
    # After the reload the page shows the whole text from the log; the
    # producer's partial text is exactly what it streamed.
    assert text(page, "#output") == end["partial"]["text"]
    assert text(page, "#result") == end["partial"]["text"]
    assert page.is_disabled("#stop")
    assert took < 3
    # Reloading again shows the end at once, by key.
    page.reload()
    wait_status(page, "cancelled", 10)
    assert page.evaluate("window.demo.found.status") == "cancelled"


@pytest.fixture
def abandoning_demo(demo_factory: DemoFactory, r: object) -> Demo:
    return demo_factory(FLASK_SSE_RESILIENCE_CANCEL_WHEN_ABANDONED="3")


def test_an_abandoned_generation_is_cancelled_a_reloaded_page_is_not(
    abandoning_demo: Demo, page: Any
) -> None:
    demo = abandoning_demo
    lonely = demo.client("bob").post(
        "/generations", json={"tokens": 2000, "interval_ms": 20}
    )
    lonely_id = lonely.json()["streamId"]
    start_chat(page, demo, "chat-8", tokens=2000, interval_ms=20)
    watched = page.evaluate("window.demo.streamId")
    started = time.monotonic()
    while time.monotonic() - started < 8:
        page.reload()  # gone for a moment, every 2 s
        wait_status(page, "connected", 10)
        time.sleep(2)
    recover = demo.client("alice").get(f"/sse/streams/{watched}/recover").json()
    assert recover["status"] == "active"
    assert page.evaluate("window.demo.streamId") == watched
    gone = demo.client("bob").get(f"/sse/streams/{lonely_id}/recover").json()
    assert gone["status"] == "cancelled"
    assert gone["terminalEventData"]["by"] == "abandoned"
    page.click("#stop")
    wait_status(page, "cancelled", 10)


def test_a_cross_site_form_cannot_cancel(demo: Demo, page: Any) -> None:
    """A page of another origin (another port: the same site, so the browser
    sends the victim's Lax session cookie along) posts a form to the cancel
    URL, then a JSON fetch: both refused, the generation goes on."""
    start_chat(page, demo, "chat-9", tokens=2000, interval_ms=20)
    sid = page.evaluate("window.demo.streamId")
    target = f"{demo.base}/sse/streams/{sid}/cancel"
    evil = "http://127.0.0.1:1/evil.html"  # never reached: served below
    page.route(
        evil,
        lambda route: route.fulfill(
            content_type="text/html",
            body=f"""<form id="f" method="POST" action="{target}"
                        enctype="text/plain">
                       <input name='{{"reason":"' value='csrf"}}'></form>
                     <script>
                       fetch("{target}", {{method: "POST", mode: "no-cors",
                         credentials: "include", body: "{{}}",
                         headers: {{"Content-Type": "text/plain"}}}})
                         .finally(() => document.getElementById("f").submit());
                     </script>""",
        ),
    )
    answers: list[int] = []
    page.on(
        "response",
        lambda r: answers.append(r.status) if r.url == target else None,
    )
    page.goto(evil)
    page.wait_for_function("document.body.innerText.includes('cross_site')")
    assert answers and set(answers) == {403}
    recover = demo.client("alice").get(f"/sse/streams/{sid}/recover").json()
    assert recover["status"] == "active"


def test_a_second_tab_joins_mid_answer_from_the_snapshot(demo: Demo, page: Any) -> None:
    # The demo's producer keeps a snapshot (the text so far) every 100 tokens.
    start_chat(page, demo, "chat-9", tokens=600, interval_ms=5)
    page.wait_for_function(
        "window.demo.events.filter(e => e.type === 'token').length >= 250",
        timeout=20_000,
    )
    other = page.context.new_page()  # a tab of its own: no cursor kept
    other.goto(demo.base + "/?chat=chat-9")
    wait_status(other, "completed", 30)
    wait_status(page, "completed", 30)
    events = other.evaluate("window.demo.events")
    assert events[0]["type"] == "snapshot"
    assert sum(e["type"] == "token" for e in events) <= 600 - 200  # not all 600
    final = events[-1]["data"]["text"]
    assert text(other, "#output") == text(page, "#output") == final
