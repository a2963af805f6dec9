from __future__ import annotations

import threading
import time

import pytest
import redis
from flask import Flask

from flask_sse_resilience import SSEResilience, wire
from flask_sse_resilience.store.keys import Keys
from harness.redis_server import RedisServer

from .conftest import AppFactory
from .sse import envelope
from .streams import data, login, open_stream, read, types

KEYS = Keys("sse:")


@pytest.fixture
def app_sse(make_app: AppFactory) -> tuple[Flask, SSEResilience]:
    return make_app()


def produce(sse: SSEResilience, app: Flask, sid: str, n: int, delay: float = 0) -> None:
    with sse.producer(sid, app=app) as out:
        for i in range(n):
            out.send("token", {"i": i})
            time.sleep(delay)
        out.complete({"n": n})


def test_no_identity_is_401_json(app_sse: tuple[Flask, SSEResilience]) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    response = app.test_client().get(f"/sse/streams/{sid}")
    assert response.status_code == 401
    assert response.json == {
        "error": "authentication_required",
        "message": "Sign in to follow streams.",
    }


def test_unknown_and_foreign_streams_look_the_same(
    app_sse: tuple[Flask, SSEResilience],
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    client = app.test_client()
    login(client, "mallory")
    foreign = client.get(f"/sse/streams/{sid}")
    unknown = client.get("/sse/streams/doesnotexist")
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.data == unknown.data
    assert foreign.json == {"error": "stream_not_found", "message": "No such stream."}
    assert client.get(f"/sse/streams/{sid}/recover").data == (
        client.get("/sse/streams/doesnotexist/recover").data
    )


@pytest.mark.parametrize("bad", ["a.b", "x" * 129, "%E2%98%83", "a%20b"])
def test_malformed_stream_ids_are_400(
    app_sse: tuple[Flask, SSEResilience], bad: str
) -> None:
    app, _ = app_sse
    client = app.test_client()
    login(client, "alice")
    for url in (f"/sse/streams/{bad}", f"/sse/streams/{bad}/recover"):
        response = client.get(url)
        assert response.status_code == 400, url
        assert response.json["error"] == "invalid_stream_id"


@pytest.mark.parametrize(
    "bad",
    [
        "garbage",
        "-1",
        "1" * 101,
        "1-",
        "1-0-0",
        "99999999999999-0",
        "0-0",
        "\u0661\u0662-0",  # Arabic-Indic digits: \d would match them
        "18446744073709551616-0",
    ],
)
def test_bad_last_event_id_is_400(
    app_sse: tuple[Flask, SSEResilience], bad: str
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    client = app.test_client()
    login(client, "alice")
    response = client.get(f"/sse/streams/{sid}", headers={"Last-Event-ID": bad})
    assert response.status_code == 400
    assert response.json["error"] == "invalid_last_event_id"


def test_live_stream_headers_frames_and_end(
    app_sse: tuple[Flask, SSEResilience], r: redis.Redis
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    client = app.test_client()
    login(client, "alice")
    response = open_stream(client, f"/sse/streams/{sid}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-cache, no-transform"
    assert response.headers["X-Accel-Buffering"] == "no"
    producer = threading.Thread(target=produce, args=(sse, app, sid, 5, 0.05))
    producer.start()
    events, raw = read(response)
    producer.join()
    assert types(events) == ["connected"] + ["token"] * 5 + ["completed"]
    assert envelope(events[0]) == {
        "type": "connected",
        "streamId": sid,
        "heartbeatMs": 300,
    }
    assert raw.startswith(b"data: ")  # no id on the connected frame
    assert data(events)[1:6] == [{"i": i} for i in range(5)]
    assert data(events)[-1] == {"n": 5}
    ids = [e.id for e in events[1:]]
    assert len(set(ids)) == 6 and all(ids)
    response.close()
    assert r.zcard(KEYS.stream_connections(sid)) == 0


def test_keepalive_comments_while_quiet(
    app_sse: tuple[Flask, SSEResilience], r: redis.Redis
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    client = app.test_client()
    login(client, "alice")
    response = open_stream(client, f"/sse/streams/{sid}")
    body = iter(response.response)
    assert next(body).startswith(b"data: ")
    assert next(body) == wire.KEEPALIVE
    assert r.zcard(KEYS.stream_connections(sid)) == 1
    assert sse.get_stream(sid, app=app).connections == 1
    response.close()
    assert r.zcard(KEYS.stream_connections(sid)) == 0
    assert sse.get_stream(sid, app=app).connections == 0


def test_resume_with_last_event_id_loses_and_doubles_nothing(
    app_sse: tuple[Flask, SSEResilience],
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    client = app.test_client()
    login(client, "alice")
    producer = threading.Thread(target=produce, args=(sse, app, sid, 30, 0.01))
    producer.start()
    first = open_stream(client, f"/sse/streams/{sid}")
    seen, _ = read(first, limit=8)
    first.close()
    rest = open_stream(client, f"/sse/streams/{sid}", last_event_id=seen[-1].id)
    more, _ = read(rest)
    producer.join()
    got = [d["i"] for d in data(seen[1:] + more[1:]) if "i" in d]
    assert got == list(range(30))
    assert types(more)[-1] == "completed"


def test_ended_stream_sends_its_terminal_event_at_once(
    app_sse: tuple[Flask, SSEResilience],
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    produce(sse, app, sid, 3)
    client = app.test_client()
    login(client, "alice")
    events, _ = read(open_stream(client, f"/sse/streams/{sid}"), seconds=2)
    assert types(events) == ["connected", "completed"]
    terminal_id = events[-1].id
    assert terminal_id == sse.get_completion(sid, app=app).event_id
    # With a Last-Event-ID the log replays what follows it, ending with the end.
    log = sse.event_log(app).read(sid, None)
    replay, _ = read(open_stream(client, f"/sse/streams/{sid}", log[0].id))
    assert types(replay) == ["connected", "token", "token", "completed"]
    # A client that has the terminal event is told to stop for good.
    done = open_stream(client, f"/sse/streams/{sid}", terminal_id)
    assert done.status_code == 204
    # One holding events the stream no longer has (a Redis failover lost
    # them) is given the end rather than a 400 it could never get past.
    ahead, _ = read(open_stream(client, f"/sse/streams/{sid}", "99999999999999-0"))
    assert types(ahead) == ["connected", "completed"]
    assert ahead[-1].id == terminal_id


def test_a_trimmed_log_gives_an_explicit_reset(make_app: AppFactory) -> None:
    app, sse = make_app({"SSE_RESILIENCE_MAX_EVENTS": 100})
    sid = sse.open_stream("alice", app=app)
    with sse.producer(sid, app=app) as out:
        first_id = out.send("token", {"i": 0})
        for i in range(1, 400):
            out.send("token", {"i": i})
    client = app.test_client()
    login(client, "alice")
    events, _ = read(open_stream(client, f"/sse/streams/{sid}", first_id))
    assert types(events)[:2] == ["connected", "reset"]
    numbers = [d["i"] for d in data(events) if isinstance(d, dict) and "i" in d]
    assert numbers == list(range(numbers[0], 400)) and numbers[0] > 1
    assert types(events)[-1] == "completed"


def test_recover_reports_state_and_terminal_event(
    app_sse: tuple[Flask, SSEResilience],
) -> None:
    app, sse = app_sse
    client = app.test_client()
    login(client, "alice")
    active = sse.open_stream("alice", app=app)
    body = client.get(f"/sse/streams/{active}/recover").json
    assert body == {"status": "active", "streamId": active}
    done = sse.open_stream("alice", app=app)
    produce(sse, app, done, 1)
    body = client.get(f"/sse/streams/{done}/recover").json
    assert body["status"] == "completed"
    assert body["terminalEventType"] == "completed"
    assert body["terminalEventData"] == {"n": 1}
    assert body["completedAt"].endswith("Z") and body["eventId"]
    failed = sse.open_stream("alice", app=app)
    with pytest.raises(ZeroDivisionError), sse.producer(failed, app=app):
        1 / 0  # noqa: B018
    body = client.get(f"/sse/streams/{failed}/recover").json
    assert body["status"] == "failed"
    assert body["terminalEventData"] == {
        "reason": "error",
        "error": "ZeroDivisionError",
    }
    missing = client.get("/sse/streams/nothing/recover")
    assert missing.status_code == 404 and missing.json["status"] == "unknown"


def test_redis_down_is_503_json(
    make_app: AppFactory, redis_factory: type[RedisServer]
) -> None:
    server = redis_factory()
    app, sse = make_app({"SSE_RESILIENCE_REDIS_URL": server.url})
    sid = sse.open_stream("alice", app=app)
    server.kill()
    client = app.test_client()
    login(client, "alice")
    for url in (f"/sse/streams/{sid}", f"/sse/streams/{sid}/recover"):
        started = time.monotonic()
        response = client.get(url)
        assert response.status_code == 503
        assert response.json["error"] == "redis_unavailable"
        assert time.monotonic() - started < 5


def test_apps_serve_streams_under_their_own_urls(
    app_sse: tuple[Flask, SSEResilience],
) -> None:
    app, sse = app_sse

    @app.get("/chats/<cid>/events")
    def chat_events(cid: str) -> object:
        return sse.stream_response(cid)

    @app.get("/chats/<cid>/recover")
    def chat_recover(cid: str) -> object:
        return sse.recover_response(cid)

    sid = sse.open_stream("alice", app=app, stream_id="chat-42")
    produce(sse, app, sid, 2)
    client = app.test_client()
    assert client.get("/chats/chat-42/events").status_code == 401
    login(client, "alice")
    events, _ = read(open_stream(client, "/chats/chat-42/events"))
    assert types(events) == ["connected", "completed"]
    assert client.get("/chats/chat-42/recover").json["status"] == "completed"
    login(client, "bob")
    assert client.get("/chats/chat-42/events").status_code == 404


def test_a_dropped_pubsub_connection_loses_nothing(
    app_sse: tuple[Flask, SSEResilience], r: redis.Redis
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    client = app.test_client()
    login(client, "alice")
    response = open_stream(client, f"/sse/streams/{sid}")
    body = iter(response.response)
    assert b"connected" in next(body)
    with sse.producer(sid, app=app) as out:
        out.send("token", {"i": 0})
        r.client_kill_filter(_type="pubsub")  # the worker's one listener
        for i in range(1, 20):
            out.send("token", {"i": i})  # some published while unsubscribed
    events, _ = read(response)
    numbers = [d["i"] for d in data(events) if isinstance(d, dict) and "i" in d]
    assert numbers == list(range(20))
    assert types(events)[-1] == "completed"


def test_a_stopping_worker_sends_new_live_clients_on_at_once(
    app_sse: tuple[Flask, SSEResilience],
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    client = app.test_client()
    login(client, "alice")
    app.extensions["sse_resilience"].shutdown()
    response = open_stream(client, f"/sse/streams/{sid}")
    assert response.status_code == 200
    assert response.get_data().endswith(b"\n\nretry: 500\n\n")
    assert response.headers["Content-Type"] == "text/event-stream"


def test_a_response_admitted_before_the_stop_is_sent_on_too(
    app_sse: tuple[Flask, SSEResilience],
) -> None:
    """The drain race: admitted before ``shutdown``, its body subscribes
    after ``close_all``; the broker remembers and sends it on at once."""
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    client = app.test_client()
    login(client, "alice")
    response = open_stream(client, f"/sse/streams/{sid}")
    body = iter(response.response)
    assert b"connected" in next(body)  # admitted; not yet following
    started = time.monotonic()
    app.extensions["sse_resilience"].shutdown()
    rest = b"".join(body)
    assert rest.endswith(b"retry: 500\n\n")
    assert time.monotonic() - started < 1
