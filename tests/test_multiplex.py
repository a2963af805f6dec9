"""Several streams on one response (``GET /sse/multi``), and the token notice."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
import redis
from flask import Flask

from flask_sse_resilience import SSEResilience, wire
from flask_sse_resilience.serve.timeline import Notice
from flask_sse_resilience.store.keys import Keys

from .conftest import AppFactory
from .sse import envelope
from .streams import login, open_stream, read

KEYS = Keys("sse:")


@pytest.fixture
def app_sse(make_app: AppFactory) -> tuple[Flask, SSEResilience]:
    return make_app()


def multi(app: Flask, streams: list[str], cursor: str | None = None,
          user: str = "alice", query: str = "") -> Any:  # fmt: skip
    client = app.test_client()
    login(client, user)
    return open_stream(client, f"/sse/multi?streams={','.join(streams)}{query}", cursor)


def test_the_cursor_round_trips() -> None:
    positions = ["1-0", None, "2-5"]
    assert wire.parse_cursor(wire.format_cursor(positions), 3) == positions
    assert wire.parse_cursor(None, 2) == [None, None]
    assert wire.parse_cursor("1-0", 2) is None


def test_events_of_several_streams_arrive_tagged_with_one_combined_cursor(
    app_sse: tuple[Flask, SSEResilience],
) -> None:
    app, sse = app_sse
    a, b = sse.open_stream("alice", app=app), sse.open_stream("alice", app=app)
    with sse.producer(a, app=app) as out_a, sse.producer(b, app=app) as out_b:
        a1 = out_a.send("token", "a1")
        b1 = out_b.send("token", "b1")
        out_a.complete("a-done")
        response = multi(app, [a, b])
        events, _ = read(response, limit=3)
        assert envelope(events[0]) == {
            "type": "connected", "streams": [a, b], "heartbeatMs": 300,
        }  # fmt: skip
        # As on its own: an ended stream's newcomer gets the end alone.
        seen = {(envelope(e)["stream"], envelope(e)["data"]) for e in events[1:]}
        assert seen == {(a, "a-done"), (b, "b1")}
        cursor = events[-1].id
        # Resume from the cursor: b's next event only, nothing doubled.
        out_b.send("token", "b2")
        out_b.complete("b-done")
    resumed, _ = read(multi(app, [a, b], cursor))
    tail = [(envelope(e)["stream"], envelope(e)["data"]) for e in resumed[1:]]
    assert tail == [(b, "b2"), (b, "b-done")]
    assert envelope(resumed[1])["eventId"] not in (a1, b1)
    # Holding every end: 204, which stops a browser's EventSource.
    assert multi(app, [a, b], resumed[-1].id).status_code == 204


def test_every_cut_point_resumes_with_nothing_lost_or_doubled(
    app_sse: tuple[Flask, SSEResilience],
) -> None:
    app, sse = app_sse
    ids = [sse.open_stream("alice", app=app) for _ in range(3)]
    outs = [sse.producer(sid, app=app).__enter__() for sid in ids]
    for i in range(3):
        for n, out in enumerate(outs):
            out.send("token", f"{n}.{i}")
    expected = sorted(f"{n}.{i}" for n in range(3) for i in range(3))
    for cut in range(1, 9):
        first, _ = read(multi(app, ids), limit=cut + 1)
        rest, _ = read(multi(app, ids, first[-1].id), limit=9 - cut + 1)
        got = [envelope(e)["data"] for e in first[1:] + rest[1:]]
        assert sorted(got) == expected, cut
        # Each stream's events in its own order.
        for n in range(3):
            mine = [g for g in got if g.startswith(f"{n}.")]
            assert mine == sorted(mine), cut
    for out in outs:
        out.__exit__(None, None, None)


def test_a_stream_that_is_not_yours_is_an_error_event_never_data(
    app_sse: tuple[Flask, SSEResilience],
) -> None:
    app, sse = app_sse
    mine = sse.open_stream("alice", app=app)
    theirs = sse.open_stream("mallory", app=app)
    with sse.producer(theirs, app=app) as out:
        out.send("token", "secret")
        out.complete("secret end")
    with sse.producer(mine, app=app) as out:
        out.complete("mine")
    events, raw = read(multi(app, [theirs, mine, "nosuchstream"]))
    assert b"secret" not in raw
    kinds = [(envelope(e)["type"], envelope(e).get("stream")) for e in events]
    assert ("error", theirs) in kinds and ("error", "nosuchstream") in kinds
    assert ("completed", mine) in kinds
    refused = [envelope(e)["data"] for e in events if envelope(e)["type"] == "error"]
    assert refused[0] == refused[1]  # unknown and foreign look the same
    assert refused[0]["status"] == 404


def test_a_cursor_ahead_of_one_live_stream_is_its_error_event(
    app_sse: tuple[Flask, SSEResilience],
) -> None:
    """The single route's 400 for that stream; the others go on."""
    app, sse = app_sse
    a, b = sse.open_stream("alice", app=app), sse.open_stream("alice", app=app)
    with sse.producer(a, app=app) as out_a, sse.producer(b, app=app) as out_b:
        first = out_a.send("token", "a1")
        out_b.complete("b-done")
        ahead = f"{int(first.split('-')[0]) + 1000}-0"  # where a has not been
        events, _ = read(multi(app, [a, b], f"{ahead},"), limit=3)
    assert envelope(events[1]) == {
        "type": "error",
        "stream": a,
        "data": {
            "error": "invalid_last_event_id",
            "message": envelope(events[1])["data"]["message"],
            "status": 400,
        },
    }
    assert events[1].id == ""  # (no id: line)
    assert (envelope(events[2])["stream"], envelope(events[2])["type"]) == (
        b,
        "completed",
    )


def test_bad_requests_are_refused_as_a_whole(
    app_sse: tuple[Flask, SSEResilience],
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    client = app.test_client()
    assert client.get(f"/sse/multi?streams={sid}").status_code == 401
    login(client, "alice")
    for query, error in [
        ("", "invalid_multi_request"),
        (f"?streams={sid},{sid}", "invalid_multi_request"),
        ("?streams=bad%20id", "invalid_multi_request"),
        ("?streams=" + ",".join(f"s{i}" for i in range(17)), "invalid_multi_request"),
        (f"?streams={sid}&tokens=a,b", "invalid_multi_request"),
        (f"?streams={sid}&lastEventId=1-0,2-0", "invalid_last_event_id"),
        (f"?streams={sid}&lastEventId=nonsense", "invalid_last_event_id"),
        (f"?streams={sid}&from=middle", "invalid_from"),
    ]:
        answer = client.get("/sse/multi" + query)
        assert answer.status_code == 400, query
        assert answer.get_json()["error"] == error, query


def test_live_events_of_two_streams_and_one_lease(
    app_sse: tuple[Flask, SSEResilience], r: redis.Redis
) -> None:
    app, sse = app_sse
    a, b = sse.open_stream("alice", app=app), sse.open_stream("alice", app=app)
    response = multi(app, [a, b])
    got: list[Any] = []
    reader = threading.Thread(target=lambda: got.extend(read(response, limit=5)[0]))
    reader.start()
    time.sleep(0.3)
    # One connection for the user, counted for each stream.
    assert r.zcard(KEYS.user_connections("alice")) == 1
    assert r.zcard(KEYS.stream_connections(a)) == 1
    assert r.zcard(KEYS.stream_connections(b)) == 1
    with sse.producer(a, app=app) as out_a, sse.producer(b, app=app) as out_b:
        out_a.send("token", 1)
        out_b.send("token", 2)
        out_a.send("token", 3)
        out_b.complete("end")
        reader.join(10)
    pairs = [(envelope(e).get("stream"), envelope(e).get("data")) for e in got[1:]]
    # Each stream in its own order; the streams interleave as they come.
    assert [d for s, d in pairs if s == a] == [1, 3]
    assert [d for s, d in pairs if s == b] == [2, "end"]
    response.close()
    deadline = time.monotonic() + 5
    while r.zcard(KEYS.stream_connections(a)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert r.zcard(KEYS.stream_connections(a)) == 0
    assert r.zcard(KEYS.user_connections("alice")) == 0


def test_per_stream_tokens_and_the_token_notice(
    make_app: AppFactory,
) -> None:
    app, sse = make_app(
        {"SSE_RESILIENCE_TOKEN_MAX_AGE": 2, "SSE_RESILIENCE_TOKEN_REFRESH_LEAD": 1.5}
    )
    a = sse.open_stream("alice", app=app)
    b = sse.open_stream("bob", app=app)
    token_a, token_b = sse.stream_token(a, "alice"), sse.stream_token(b, "bob")
    client = app.test_client()  # nobody signed in: tokens only
    started = time.monotonic()
    single = client.get(f"/sse/streams/{a}?token={token_a}", buffered=False)
    events, _ = read(single, limit=2)
    assert envelope(events[1])["type"] == "token-expiring"
    assert 0 < envelope(events[1])["expiresInMs"] <= 1500
    assert time.monotonic() - started < 1.5
    both = client.get(f"/sse/multi?streams={a},{b}&tokens={token_a},{token_b}",
                      buffered=False)  # fmt: skip
    events, _ = read(both, limit=2)
    assert [envelope(e)["type"] for e in events] == ["connected", "token-expiring"]
    both.close()
    single.close()
    # A token for another stream: that stream's error; no valid token: 401.
    wrong = client.get(f"/sse/multi?streams={a},{b}&tokens={token_a},{token_a}",
                       buffered=False)  # fmt: skip
    events, _ = read(wrong, limit=2)
    assert envelope(events[1])["stream"] == b
    assert envelope(events[1])["data"]["error"] == "invalid_stream_token"
    wrong.close()
    swapped = client.get(f"/sse/multi?streams={a},{b}&tokens={token_b},{token_a}")
    assert swapped.status_code == 401
    time.sleep(3.1)  # itsdangerous counts whole seconds
    expired = client.get(f"/sse/streams/{a}?token={token_a}")
    assert expired.status_code == 401
    assert json.loads(expired.data)["error"] == "invalid_stream_token"


def test_a_long_replay_waits_for_the_client_and_arrives_whole(
    app_sse: tuple[Flask, SSEResilience],
) -> None:
    """More events than the pumps may queue ahead (back-pressure), from two
    streams: every one arrives, each stream in order."""
    app, sse = app_sse
    a, b = sse.open_stream("alice", app=app), sse.open_stream("alice", app=app)
    with sse.producer(a, app=app) as out_a, sse.producer(b, app=app) as out_b:
        for i in range(400):
            out_a.send("token", i)
            out_b.send("token", i)
        events, _ = read(multi(app, [a, b], query="&from=start"), limit=801)
    got = [(envelope(e)["stream"], envelope(e)["data"]) for e in events[1:]]
    assert [d for s, d in got if s == a] == list(range(400))
    assert [d for s, d in got if s == b] == list(range(400))


@pytest.mark.parametrize("ending", ["rotation", "worker stop"])
def test_a_rotated_or_stopped_response_resumes_every_stream_exactly(
    make_app: AppFactory, ending: str
) -> None:
    """A multiplexed response that reaches its maximum age, or whose worker
    stops (the broker closes every follower), ends with ``retry:``; the
    client resumes all its streams by the combined cursor, nothing lost or
    doubled."""
    config = {"SSE_RESILIENCE_MAX_CONNECTION_AGE": 0.6 if ending == "rotation" else 0}
    app, sse = make_app(config)
    ids = [sse.open_stream("alice", app=app) for _ in range(2)]

    def produce() -> None:
        with sse.producer(ids[0], app=app) as a, sse.producer(ids[1], app=app) as b:
            for i in range(30):
                a.send("token", i)
                b.send("token", i)
                time.sleep(0.05)
            a.complete("a")
            b.complete("b")

    producer = threading.Thread(target=produce)
    producer.start()
    got: dict[str, list[Any]] = {sid: [] for sid in ids}
    cursor: str | None = None
    endings = 0
    while True:
        response = multi(app, ids, cursor)
        if response.status_code == 204:
            break
        if ending == "worker stop" and endings == 0:
            threading.Timer(0.5, app.extensions["sse_resilience"].broker.close_all,
                            args=(Notice.RECONNECT,)).start()  # fmt: skip
        events, raw = read(response, seconds=10)
        response.close()
        for event in events[1:]:
            if not event.data:
                continue  # the retry: frame
            body = envelope(event)
            got[body["stream"]].append(body["data"])
            cursor = event.id
        if raw.endswith(b"retry: 500\n\n"):
            endings += 1
            if ending == "worker stop":  # the next request: as if to a new worker
                app.extensions["sse_resilience"].broker.closing = None
            continue
        if all(g and g[-1] in ("a", "b") for g in got.values()):
            break
    producer.join()
    assert endings >= 1
    assert got[ids[0]] == [*range(30), "a"]
    assert got[ids[1]] == [*range(30), "b"]
