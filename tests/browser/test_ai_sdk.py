"""The AI SDK's real ``useChat`` (the locked ``ai`` and ``@ai-sdk/react``)
with our transport in Chromium, against the demo under gunicorn.

An abort is a disconnect: unmounting mid-answer, a reload under
``<StrictMode>``, a route change to another chat and a superseded resume never
cancel the answer on the server; only the page's Stop button does, through
``transport.stop(chatId)``. Every test records the page's requests and holds
them to that: no ``POST …/cancel`` except after Stop.

The page (clients/js/test/browser/chat-app.tsx) keeps each chat's messages in
sessionStorage as they change and starts ``useChat`` from them, as an app with
a history does; so a resume that added the answer a second time would show.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis

from flask_sse_resilience.store.keys import Keys
from harness.demo_server import Demo

from .conftest import login, open_lab

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

KEYS = Keys("sse:")
WORDS = ["hello", "resilient", "world"]
#: The demo's heartbeat interval under test (harness.demo_server): the bound
#: docs/stopping.rst gives a cancel even when its fast path is lost.
HEARTBEAT = 1.0


def expected_text(tokens: int) -> str:
    return "".join(f"{WORDS[i % 3]}{i} " for i in range(tokens))


def field_of(page: Any, name: str) -> str:
    return str(page.eval_on_selector(f"#{name}", "el => el.textContent"))


def answer(page: Any) -> str:
    return field_of(page, "answer")


def roles(page: Any) -> list[str]:
    return [role for role in field_of(page, "roles").split(",") if role]


def send(page: Any, tokens: int, interval_ms: int = 50) -> None:
    """Send a message without waiting for its answer (sendMessage's promise
    settles when the answer ends)."""
    page.evaluate(
        """([tokens, interval_ms]) => { void window.chat.send(
             "hello resilient world", {tokens, interval_ms}); }""",
        [tokens, interval_ms],
    )


def wait_ready(page: Any, seconds: float = 20) -> None:
    page.wait_for_function(
        "document.getElementById('status').textContent === 'ready'",
        timeout=seconds * 1000,
    )


def wait_answer(page: Any, text: str, seconds: float = 20) -> None:
    """Wait until the chat is ready with ``text`` as its last answer (the
    status alone says ready before a resume starts, too)."""
    try:
        page.wait_for_function(
            """(text) => document.getElementById('status').textContent === 'ready'
                 && document.getElementById('answer').textContent === text""",
            arg=text,
            timeout=seconds * 1000,
        )
    except Exception:
        assert (field_of(page, "status"), answer(page)) == ("ready", text)
        raise


def wait_text(page: Any, chars: int) -> None:
    page.wait_for_function(
        f"document.getElementById('answer').textContent.length > {chars}",
        timeout=20_000,
    )


@dataclass
class Request:
    at: float
    tab: str
    method: str
    path: str


@dataclass
class Requests:
    """Every request the pages make to the blueprint and the app's endpoint."""

    seen: list[Request] = field(default_factory=list)

    def watch(self, page: Any, tab: str = "page") -> None:
        def record(request: Any) -> None:
            path = urlsplit(request.url).path
            if path.startswith("/sse/") or path == "/generations":
                self.seen.append(Request(time.monotonic(), tab, request.method, path))

        page.on("request", record)

    def cancels(self) -> list[Request]:
        return [
            r for r in self.seen if r.method == "POST" and r.path.endswith("/cancel")
        ]

    def since(self, at: float) -> list[str]:
        """The requests from ``at`` on, as ``"<method> <path>"``."""
        return [f"{r.method} {r.path}" for r in self.seen if r.at >= at]


def stream_of(demo: Demo, chat: str) -> dict[str, Any]:
    """The chat's latest stream, by key (the recover JSON)."""
    found = demo.client("alice").get(f"/sse/keys/{chat}")
    assert found.status_code == 200, found.text
    return dict(found.json())


def state(r: redis.Redis, stream_id: str) -> str | None:
    value = r.hget(KEYS.stream(stream_id), "state")
    return None if value is None else str(value)


def wait_state(
    r: redis.Redis, stream_id: str, wanted: str, seconds: float = 20
) -> float:
    """Poll the stream's state every 2 ms; the seconds it took."""
    started = time.monotonic()
    while state(r, stream_id) != wanted:
        assert time.monotonic() - started < seconds, state(r, stream_id)
        time.sleep(0.002)
    return time.monotonic() - started


@pytest.fixture
def chat_page(demo: Demo, page: Any, lab_bundles: Path) -> Any:
    login(page, demo.base)
    return page


@pytest.fixture
def requests(chat_page: Any) -> Requests:
    """The chat page's requests, from the start."""
    seen = Requests()
    seen.watch(chat_page)
    return seen


def start_answer(page: Any, demo: Demo, chat: str, tokens: int) -> str:
    """Send a message in ``chat`` and wait for some of its answer; its stream id."""
    send(page, tokens)
    wait_text(page, 40)
    return str(stream_of(demo, chat)["streamId"])


def wait_disconnected(r: redis.Redis, stream_id: str) -> None:
    deadline = time.monotonic() + 10
    while r.zcard(KEYS.stream_connections(stream_id)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert r.zcard(KEYS.stream_connections(stream_id)) == 0


def assert_resumed_once(
    page: Any,
    r: redis.Redis,
    requests: Requests,
    since: float,
    chat: str,
    stream_id: str,
    tokens: int,
    lookups: int = 1,
) -> None:
    """The resume since ``since`` showed the whole answer once, beside the
    restored history (if any); the answer completed; nothing was cancelled;
    the requests were the key lookup(s), then one recover and one stream."""
    wait_answer(page, expected_text(tokens))
    assert roles(page).count("assistant") == 1
    assert state(r, stream_id) == "completed"
    assert requests.cancels() == []
    assert requests.since(since) == [f"GET /sse/keys/{chat}"] * lookups + [
        f"GET /sse/streams/{stream_id}/recover",
        f"GET /sse/streams/{stream_id}",
    ]


def open_chat(
    page: Any, demo: Demo, bundles: Path, query: str, dev: bool = False
) -> None:
    open_lab(page, demo.base, "chat-app-dev" if dev else "chat-app", bundles, query)
    page.wait_for_function("window.chat !== undefined && window.app !== undefined")


def test_send_reload_mid_answer_and_resume_once(
    demo: Demo, chat_page: Any, requests: Requests, lab_bundles: Path, r: redis.Redis
) -> None:
    """A plain reload mid-answer, without a history: the resume finds the
    answer by key and replays it, whole and once; nothing is cancelled."""
    page = chat_page
    open_chat(page, demo, lab_bundles, "?chat=chat-ai&history=0")
    sid = start_answer(page, demo, "chat-ai", 80)
    assert field_of(page, "status") == "streaming"
    assert expected_text(80).startswith(answer(page))
    reloading = time.monotonic()
    page.reload()
    wait_text(page, 0)
    resumed = time.monotonic() - reloading
    assert_resumed_once(page, r, requests, reloading, "chat-ai", sid, 80)
    assert roles(page) == ["assistant"]
    print(f"AI SDK: the resumed text shows {resumed:.2f} s after the reload began")


def test_unmount_mid_answer_disconnects_and_a_remount_shows_it_once(
    demo: Demo, chat_page: Any, requests: Requests, lab_bundles: Path, r: redis.Redis
) -> None:
    """useChat's unmount cleanup is ``chat.stop()``, the Stop button's own
    call: the transport only disconnects; the generation goes on."""
    page = chat_page
    open_chat(page, demo, lab_bundles, "?chat=chat-unmount")
    sid = start_answer(page, demo, "chat-unmount", 80)
    page.evaluate("window.app.mount(false)")
    wait_disconnected(r, sid)
    page.wait_for_timeout(300)
    assert state(r, sid) == "active"  # the generation goes on
    remounting = time.monotonic()
    page.evaluate("window.app.mount(true)")
    assert_resumed_once(page, r, requests, remounting, "chat-unmount", sid, 80)
    assert roles(page) == ["user", "assistant"]


def test_a_strict_mode_reload_mid_answer_cancels_nothing(
    demo: Demo, chat_page: Any, requests: Requests, lab_bundles: Path, r: redis.Redis
) -> None:
    """Under <StrictMode> (React's development build) the reloaded page
    mounts, unmounts and mounts again: the first resume is aborted while the
    second starts. Neither abort cancels; the first resume opens nothing (its
    key lookup is the only request it makes)."""
    page = chat_page
    open_chat(page, demo, lab_bundles, "?chat=chat-strict&strict=1", dev=True)
    sid = start_answer(page, demo, "chat-strict", 80)
    reloading = time.monotonic()
    page.reload()
    page.wait_for_function("window.chat !== undefined")
    wait_text(page, 0)
    resumed = time.monotonic() - reloading
    assert_resumed_once(page, r, requests, reloading, "chat-strict", sid, 80, 2)
    assert roles(page) == ["user", "assistant"]
    print(
        f"AI SDK, StrictMode: the resumed text shows {resumed:.2f} s after the reload"
    )


def test_a_route_change_to_another_chat_and_back(
    demo: Demo, chat_page: Any, requests: Requests, lab_bundles: Path, r: redis.Redis
) -> None:
    """The same component shows another chat (useChat's id changes, so its
    Chat is replaced and the old one stopped), then the first again."""
    page = chat_page
    open_chat(page, demo, lab_bundles, "?chat=chat-a")
    first = start_answer(page, demo, "chat-a", 120)
    page.evaluate("window.app.open('chat-b')")
    page.wait_for_function("document.getElementById('chat').textContent === 'chat-b'")
    send(page, 20, interval_ms=20)  # an answer in the other chat meanwhile
    wait_answer(page, expected_text(20))
    wait_disconnected(r, first)
    assert state(r, first) == "active"
    back = time.monotonic()
    page.evaluate("window.app.open('chat-a')")
    assert_resumed_once(page, r, requests, back, "chat-a", first, 120)
    assert roles(page) == ["user", "assistant"]


def test_stop_cancels_on_the_server_and_no_text_follows(
    demo: Demo, chat_page: Any, requests: Requests, lab_bundles: Path, r: redis.Redis
) -> None:
    """The Stop button: ``transport.stop(chatId)``, then useChat's stop()."""
    page = chat_page
    open_chat(page, demo, lab_bundles, "?chat=chat-stop")
    # useChat's stop() alone (what an unmount calls) cancels nothing.
    sid = start_answer(page, demo, "chat-stop", 1000)
    page.evaluate("window.chat.disconnect()")
    wait_ready(page)
    page.wait_for_timeout(300)
    assert state(r, sid) == "active"
    assert requests.cancels() == []
    # A new message replaces it (on_conflict "cancel", by the server), then Stop.
    send(page, 1000)
    page.wait_for_function(
        "document.getElementById('messages').textContent == 4"
        " && document.getElementById('answer').textContent.length > 40"
        " && document.getElementById('status').textContent === 'streaming'"
    )
    second = stream_of(demo, "chat-stop")["streamId"]
    assert second != sid
    assert state(r, sid) == "cancelled"  # superseded, by the server
    clicked = time.monotonic()
    page.evaluate("void window.chat.stop()")
    cancelled = wait_state(r, second, "cancelled", seconds=10)
    wait_ready(page)
    shown = answer(page)
    page.wait_for_timeout(500)
    assert answer(page) == shown  # nothing more arrives
    assert expected_text(1000).startswith(shown)
    assert roles(page) == ["user", "assistant", "user", "assistant"]
    assert [(c.method, c.path) for c in requests.cancels()] == [
        ("POST", f"/sse/streams/{second}/cancel")
    ]
    assert requests.cancels()[0].at >= clicked
    end = demo.client("alice").get(f"/sse/streams/{second}/recover").json()
    assert (end["terminalEventData"]["by"], end["terminalEventData"]["reason"]) == (
        "user",
        "stopped",
    )
    # What the page shows is what the producer had sent when it stopped, or less.
    assert end["terminalEventData"]["partial"]["text"].startswith(shown)
    assert cancelled < HEARTBEAT, cancelled
    print(f"AI SDK: cancelled on the server {cancelled * 1000:.0f} ms after Stop")


def test_stop_while_the_endpoint_is_answering_cancels_once_known(
    demo: Demo, chat_page: Any, requests: Requests, lab_bundles: Path, r: redis.Redis
) -> None:
    """Stop pressed before the app's endpoint answered: the answer it starts
    is cancelled as soon as its id is known."""
    page = chat_page
    open_chat(page, demo, lab_bundles, "?chat=chat-early")
    held: list[tuple[Any, Any]] = []
    # The generation starts; its answer reaches the page only when released.
    page.route(
        f"{demo.base}/generations", lambda route: held.append((route, route.fetch()))
    )
    send(page, 1000)
    page.wait_for_function(
        "document.getElementById('status').textContent === 'submitted'"
    )
    while not held:
        page.wait_for_timeout(20)
    page.evaluate("void window.chat.stop()")
    page.wait_for_timeout(200)
    assert requests.cancels() == []
    route, answered = held[0]
    route.fulfill(response=answered)
    sid = stream_of(demo, "chat-early")["streamId"]
    wait_state(r, sid, "cancelled", seconds=10)
    wait_ready(page)
    assert [c.path for c in requests.cancels()] == [f"/sse/streams/{sid}/cancel"]


def test_two_tabs_on_one_chat_stop_in_one(
    demo: Demo, chat_page: Any, requests: Requests, lab_bundles: Path, r: redis.Redis
) -> None:
    """The second tab resumes the first tab's answer by key; Stop there
    cancels it for both, and only that tab sends a cancel."""
    first = chat_page
    open_chat(first, demo, lab_bundles, "?chat=chat-tabs&history=0")
    sid = start_answer(first, demo, "chat-tabs", 1000)
    second = first.context.new_page()
    try:
        requests.watch(second, "second")
        open_chat(second, demo, lab_bundles, "?chat=chat-tabs&history=0")
        wait_text(second, 40)
        clicked = time.monotonic()
        second.evaluate("void window.chat.stop()")
        cancelled = wait_state(r, sid, "cancelled", seconds=10)
        wait_ready(second)
        wait_ready(first)  # its answer ended with the cancelled event
        shown = answer(first), answer(second)
        first.wait_for_timeout(500)
        assert (answer(first), answer(second)) == shown
        assert expected_text(1000).startswith(shown[0])
        assert expected_text(1000).startswith(shown[1])
        assert [(c.tab, c.path) for c in requests.cancels()] == [
            ("second", f"/sse/streams/{sid}/cancel")
        ]
        assert requests.cancels()[0].at >= clicked
        assert cancelled < HEARTBEAT, cancelled
        print(f"AI SDK, two tabs: cancelled {cancelled * 1000:.0f} ms after Stop")
    finally:
        second.close()


def test_a_resume_racing_the_answers_last_events_adds_no_second_answer(
    demo: Demo, chat_page: Any, requests: Requests, lab_bundles: Path, r: redis.Redis
) -> None:
    """The duplicate seen once: history ``user, assistant, assistant``.

    The reloaded page restores its history (the user message and the answer
    so far), and useChat's resume adds the replayed answer. Held here at its
    worst: the key lookup finds the answer running, and its reply is held
    back until the answer has ended, so the resume follows an ended stream
    (which answers a client without a position with its end alone). The
    replay must land on the restored message (same id: the stream id) and
    carry the whole text, not an empty one."""
    page = chat_page
    open_chat(page, demo, lab_bundles, "?chat=chat-race")
    sid = start_answer(page, demo, "chat-race", 30)
    looked_up: list[str] = []

    def late(route: Any) -> None:
        found = route.fetch()  # "active", now
        looked_up.append(json.loads(found.text())["status"])
        wait_state(r, sid, "completed")
        route.fulfill(response=found)

    page.route(f"{demo.base}/sse/keys/chat-race", late)
    reloading = time.monotonic()
    page.reload()
    wait_answer(page, expected_text(30))
    assert looked_up == ["active"]
    page.wait_for_timeout(300)
    assert roles(page) == ["user", "assistant"]
    assert answer(page) == expected_text(30)
    stored = page.evaluate("JSON.parse(sessionStorage.getItem('history:chat-race'))")
    assert [m["role"] for m in stored] == ["user", "assistant"]
    assert stored[1]["id"] == sid
    assert requests.cancels() == []
    assert requests.since(reloading) == [
        "GET /sse/keys/chat-race",
        f"GET /sse/streams/{sid}/recover",  # the end alone
        f"GET /sse/streams/{sid}",  # the whole log, from before its first event
    ]
