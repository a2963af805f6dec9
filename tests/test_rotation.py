"""SSE_RESILIENCE_MAX_CONNECTION_AGE: a healthy live response ends with a
``retry:`` hint once old enough; the client resumes from its cursor."""

from __future__ import annotations

import threading
import time

from flask import Flask

from flask_sse_resilience import SSEResilience

from .conftest import AppFactory
from .streams import login, open_stream, read


def produce(sse: SSEResilience, app: Flask, sid: str, n: int, gap: float) -> None:
    with sse.producer(sid, app=app) as out:
        for i in range(n):
            out.send("token", {"i": i})
            time.sleep(gap)
        out.complete({"n": n})


def test_an_old_connection_rotates_and_the_client_resumes_exactly(
    make_app: AppFactory,
) -> None:
    app, sse = make_app({"SSE_RESILIENCE_MAX_CONNECTION_AGE": 0.5})
    sid = sse.open_stream("alice", app=app)
    client = app.test_client()
    login(client, "alice")
    producer = threading.Thread(target=produce, args=(sse, app, sid, 40, 0.05))
    producer.start()
    tokens: list[int] = []
    last: str | None = None
    rotations = 0
    ages: list[float] = []
    while True:
        started = time.monotonic()
        response = open_stream(client, f"/sse/streams/{sid}", last)
        events, raw = read(response, seconds=10)
        response.close()
        body = [e for e in events if e.event == "message" and e.id and e.data]
        tokens += [e.json()["data"]["i"] for e in body if e.json()["type"] == "token"]
        last = body[-1].id if body else last
        if body and body[-1].json()["type"] == "completed":
            break
        assert raw.endswith(b"retry: 500\n\n"), raw[-80:]
        rotations += 1
        ages.append(time.monotonic() - started)
    producer.join()
    assert tokens == list(range(40))  # nothing lost, nothing doubled
    assert rotations >= 2
    # ±20 % of 0.5 s, plus scheduling on a loaded machine (never early).
    assert all(0.38 <= age <= 3.0 for age in ages), ages


def test_age_zero_never_rotates(make_app: AppFactory) -> None:
    app, sse = make_app({"SSE_RESILIENCE_MAX_CONNECTION_AGE": 0})
    sid = sse.open_stream("alice", app=app)
    client = app.test_client()
    login(client, "alice")
    producer = threading.Thread(target=produce, args=(sse, app, sid, 15, 0.1))
    producer.start()
    events, raw = read(open_stream(client, f"/sse/streams/{sid}"), seconds=10)
    producer.join()
    assert b"retry:" not in raw
    assert events[-1].json()["type"] == "completed"
    assert len([e for e in events if e.data and e.json().get("type") == "token"]) == 15
