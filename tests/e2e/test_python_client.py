"""flask_sse_resilience.client.follow against the demo under gunicorn."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import httpx
import pytest

from flask_sse_resilience.client import StreamUnavailable, afollow, follow
from harness.demo_server import Demo, DemoFactory

from ..test_client_tokens import run as run_async

pytestmark = pytest.mark.e2e


def generation(demo: Demo, **params: Any) -> tuple[str, httpx.Client]:
    client = demo.client("alice")
    body = {"prompt": "a b", "tokens": 10, "interval_ms": 10, **params}
    response = client.post("/generations", json=body)
    assert response.status_code == 201
    return str(response.json()["streamUrl"]), client


def test_follow_to_the_end_then_recover_without_connecting(demo: Demo) -> None:
    url, client = generation(demo, tokens=10)
    events = list(follow(url, client=client))
    assert [e.type for e in events] == ["token"] * 10 + ["completed"]
    assert [e.data["index"] for e in events[:-1]] == list(range(10))
    assert events[-1].terminal and all(e.id for e in events)
    # After the end: one terminal event, straight from /recover.
    requests: list[str] = []
    hooked = httpx.Client(
        base_url=demo.base,
        cookies=client.cookies,
        event_hooks={"request": [lambda r: requests.append(r.url.path)]},
    )
    again = list(follow(url, client=hooked))
    assert [(e.type, e.id) for e in again] == [("completed", events[-1].id)]
    assert requests == [url + "/recover"]
    # Resuming from an id replays the rest of the log.
    rest = list(follow(url, client=hooked, last_event_id=events[6].id))
    assert [e.id for e in rest] == [e.id for e in events[7:]]
    # Holding the terminal event: one request, answered 204, and done.
    requests.clear()
    assert list(follow(url, client=hooked, last_event_id=events[-1].id)) == []
    assert requests == [url]
    hooked.close()


def test_follow_resumes_through_a_graceful_reload(demo: Demo) -> None:
    url, client = generation(demo, tokens=40, interval_ms=100)
    received = []
    reloaded = threading.Event()
    for event in follow(url, client=client, base_delay=0.1):
        received.append(event)
        if len(received) == 5 and not reloaded.is_set():
            demo.proc.send_signal(signal.SIGHUP)
            reloaded.set()
    tokens = [e.data["index"] for e in received if e.type == "token"]
    assert tokens == list(range(40))
    assert received[-1].type == "completed"


def test_follow_refuses_what_it_may_not_see(demo: Demo) -> None:
    url, _ = generation(demo)
    with pytest.raises(StreamUnavailable) as refused:
        list(follow(url, client=demo.client("mallory")))
    assert refused.value.status_code == 404
    with pytest.raises(StreamUnavailable) as anonymous:
        list(follow(url, client=demo.client()))
    assert anonymous.value.status_code == 401


def test_follow_gives_up_after_its_attempts(demo: Demo) -> None:
    url, client = generation(demo)
    dead = httpx.Client(base_url="http://127.0.0.1:9", cookies=client.cookies)
    started = time.monotonic()
    with pytest.raises(StreamUnavailable, match="gave up"):
        list(follow(url, client=dead, max_attempts=3, base_delay=0.01))
    assert time.monotonic() - started < 5
    dead.close()


def test_follow_through_connection_rotations(demo_factory: DemoFactory) -> None:
    """SSE_RESILIENCE_MAX_CONNECTION_AGE of 1 s over a 4 s stream: the server
    ends each connection with a ``retry:`` hint, the client resumes from its
    cursor, nothing lost or doubled."""
    demo = demo_factory(FLASK_SSE_RESILIENCE_MAX_CONNECTION_AGE="1")
    url, client = generation(demo, tokens=80, interval_ms=50)
    connects: list[str] = []
    hooked = httpx.Client(
        base_url=demo.base,
        cookies=client.cookies,
        event_hooks={"request": [lambda r: connects.append(r.url.path)]},
    )
    events = list(follow(url, client=hooked, base_delay=0.05))
    hooked.close()
    assert [e.data["index"] for e in events if e.type == "token"] == list(range(80))
    assert events[-1].type == "completed"
    assert connects.count(url) >= 3  # rotated at least twice


def test_cancel_and_follow_by_key(demo: Demo) -> None:
    from flask_sse_resilience.client import cancel, find_key, follow_key

    client = demo.client("alice")
    assert find_key("py-chat", client=client) is None
    assert list(follow_key("py-chat", client=client)) == []
    body = {"tokens": 3000, "interval_ms": 10, "key": "py-chat"}
    assert client.post("/generations", json=body).status_code == 201
    found = find_key("py-chat", client=client)
    assert found is not None and found["status"] == "active"
    url = f"/sse/streams/{found['streamId']}"
    events = []
    for event in follow_key("py-chat", client=client):
        events.append(event)
        if len(events) == 5:
            assert cancel(url, client=client, reason="enough")["status"] == "cancelling"
    assert events[-1].type == "cancelled" and events[-1].terminal
    assert events[-1].data["reason"] == "enough"
    # Afterwards: the end at once, by key; a second cancel says it ended.
    again = list(follow_key("py-chat", client=client))
    assert [e.type for e in again] == ["cancelled"]
    assert cancel(url, client=client)["status"] == "cancelled"
    done = client.post("/generations", json={"tokens": 1, "interval_ms": 0})
    finished = done.json()["streamUrl"]
    list(follow(finished, client=client))
    assert cancel(finished, client=client)["status"] == "completed"  # a 409
    with pytest.raises(StreamUnavailable):
        cancel("/sse/streams/nope", client=client)


def test_a_late_joiner_starts_from_the_snapshot(demo: Demo) -> None:
    # The demo's producer keeps a snapshot (the text so far) every 100 tokens.
    url, client = generation(demo, tokens=400, interval_ms=5)
    for event in follow(url, client=client, start_from="latest"):
        if event.type == "token" and event.data["index"] >= 250:
            break  # past the second snapshot
    late = list(follow(url, client=client))
    assert late[0].type == "snapshot" and late[0].id
    assert late[1].data["index"] % 100 == 0  # right after the snapshot's last
    text = late[0].data + "".join(e.data["text"] for e in late[1:-1])
    assert late[-1].type == "completed" and text == late[-1].data["text"]
    assert len(late) <= 1 + 200 + 1  # not the 400 tokens before
    # With a cursor, exactly what it lacks; from the start, the whole log.
    rest = list(follow(url, client=client, last_event_id=late[0].id))
    assert [e.id for e in rest] == [e.id for e in late[1:]]
    whole = list(follow(url, client=client, start_from="start"))
    assert [e.type for e in whole] == ["completed"]  # ended: the end alone


def test_the_async_client_follows_through_a_worker_kill(demo: Demo) -> None:
    """afollow (httpx.AsyncClient) against gunicorn: every token once, in
    order, though the worker serving it is killed mid-stream."""

    app, sse = demo.producer_app()  # the producer runs here: a kill spares it
    sid = sse.open_stream("alice")
    url = f"/sse/streams/{sid}"

    def produce() -> None:
        with sse.producer(sid, retry_for=10) as out:
            for index in range(40):
                out.send("token", {"index": index})
                time.sleep(0.05)
            out.complete({"tokens": 40})

    serving: list[int] = []

    async def record(response: httpx.Response) -> None:
        if response.request.url.path == url:
            serving.append(int(response.headers["x-demo-worker"]))

    async def main() -> list[Any]:
        events: list[Any] = []
        cookies = demo.client("alice").cookies
        hooks = {"response": [record]}
        async with httpx.AsyncClient(
            base_url=demo.base, cookies=cookies, event_hooks=hooks
        ) as http:
            async for event in afollow(url, client=http, base_delay=0.1):
                events.append(event)
                if len(events) == 5:
                    os.kill(serving[-1], signal.SIGKILL)
        return events

    producer = threading.Thread(target=produce)
    producer.start()
    events = run_async(main())
    producer.join()
    app.extensions["sse_resilience"].close()
    assert [e.data["index"] for e in events[:-1]] == list(range(40))
    assert events[-1].type == "completed"
    assert len(serving) >= 2 and serving[-1] != serving[0]


def test_a_token_only_client_outlives_its_tokens(demo_factory: DemoFactory) -> None:
    """Tokens valid 3 s, refreshed 2 s before they expire, a 7 s generation:
    the client swaps tokens on ``token-expiring`` and receives every token."""
    demo = demo_factory(
        FLASK_SSE_RESILIENCE_TOKEN_MAX_AGE="3",
        FLASK_SSE_RESILIENCE_TOKEN_REFRESH_LEAD="2",
    )
    owner = demo.client("alice")
    body = {"prompt": "a b", "tokens": 70, "interval_ms": 100, "key": "chat-t"}
    first = owner.post("/generations", json=body).json()
    first_issued = time.monotonic()
    issued: list[str] = []

    def get_token() -> str:
        # The app's own endpoint hands out a fresh token (joining the chat).
        answer = owner.post(
            "/generations", json={"key": "chat-t", "on_conflict": "join"}
        )
        issued.append(answer.json()["token"])
        return issued[-1]

    anonymous = httpx.Client(base_url=demo.base)  # no cookie: tokens only
    events = list(follow(first["streamUrl"], client=anonymous, get_token=get_token))
    assert [e.data["index"] for e in events if e.type == "token"] == list(range(70))
    assert events[-1].type == "completed"
    assert len(set(issued)) >= 3  # swapped at least twice
    # An expired token is still refused (the 7 s generation outlived the first
    # token's 3 s; wait only if it somehow did not).
    time.sleep(max(0.0, first_issued + 3.1 - time.monotonic()))
    assert (
        anonymous.get(f"{first['streamUrl']}?token={first['token']}").status_code == 401
    )
    anonymous.close()
    owner.close()
