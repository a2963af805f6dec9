"""``POST <prefix>/streams/<id>/cancel`` and ``GET <prefix>/keys/<key>``:
answers, owners only, and no cross-site cancel."""

from __future__ import annotations

import threading
import time

import pytest
from flask import Flask

from flask_sse_resilience import SSEResilience, StreamState
from harness.redis_server import RedisServer

from .conftest import AppFactory
from .streams import login, open_stream, read, types

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def app_sse(make_app: AppFactory) -> tuple[Flask, SSEResilience]:
    return make_app({"SSE_RESILIENCE_CORS_ORIGINS": "https://partner.example"})


def test_cancel_answers_by_state(app_sse: tuple[Flask, SSEResilience]) -> None:
    app, sse = app_sse
    client = app.test_client()
    login(client, "alice")
    sid = sse.open_stream("alice", app=app)
    with sse.producer(sid, app=app) as out:
        first = client.post(f"/sse/streams/{sid}/cancel", json={"reason": "stop"})
        assert first.status_code == 202
        assert first.json == {"streamId": sid, "status": "cancelling"}
        again = client.post(f"/sse/streams/{sid}/cancel", json={})
        assert again.status_code == 202  # still stopping; the first reason kept
        deadline = time.monotonic() + 2
        while not out.cancelled:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        out.cancel({"text": "so far"})
    done = client.post(f"/sse/streams/{sid}/cancel", headers=JSON)
    assert done.status_code == 200
    assert done.json["status"] == "cancelled"
    assert done.json["terminalEventType"] == "cancelled"
    assert done.json["terminalEventData"] == {
        "reason": "stop",
        "by": "user",
        "partial": {"text": "so far"},
    }
    recovered = client.get(f"/sse/streams/{sid}/recover").json
    assert recovered["status"] == "cancelled"

    other = sse.open_stream("alice", app=app)
    with sse.producer(other, app=app) as out:
        out.complete("done")
    ended = client.post(f"/sse/streams/{other}/cancel", json={})
    assert ended.status_code == 409
    assert ended.json["status"] == "completed"
    assert ended.json["error"] == "stream_ended"


def test_followers_get_one_cancelled_event(
    app_sse: tuple[Flask, SSEResilience],
) -> None:
    app, sse = app_sse
    client = app.test_client()
    login(client, "alice")
    sid = sse.open_stream("alice", app=app)
    response = open_stream(client, f"/sse/streams/{sid}")
    got: list[list[str]] = []
    reader = threading.Thread(target=lambda: got.append(types(read(response)[0])))
    reader.start()
    with sse.producer(sid, app=app) as out:
        out.send("token", 1)
        time.sleep(0.2)
        client.post(f"/sse/streams/{sid}/cancel", json={})
        while not out.cancelled:
            time.sleep(0.01)
    reader.join(10)
    assert got == [["connected", "token", "cancelled"]]


def test_foreign_unknown_and_bad_requests(
    app_sse: tuple[Flask, SSEResilience],
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    client = app.test_client()
    assert client.post(f"/sse/streams/{sid}/cancel", json={}).status_code == 401
    login(client, "mallory")
    foreign = client.post(f"/sse/streams/{sid}/cancel", json={})
    unknown = client.post("/sse/streams/nothing/cancel", json={})
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.data == unknown.data
    assert sse.get_stream(sid, app=app).cancel is None  # untouched
    login(client, "alice")
    for body in ([1], {"reason": 5}, {"reason": "x" * 201}):
        bad = client.post(f"/sse/streams/{sid}/cancel", json=body)
        assert bad.status_code == 400, body
        assert bad.json["error"] == "invalid_cancel_request"
    broken = client.post(f"/sse/streams/{sid}/cancel", data="{", headers=JSON)
    assert broken.status_code == 400
    assert client.post("/sse/streams/bad!id/cancel", json={}).status_code == 400
    assert sse.get_stream(sid, app=app).state is StreamState.ACTIVE


EVIL = {"Origin": "https://evil.example"}


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        # An HTML form of another site, posting with the victim's cookie
        # (browsers send the form page's Origin with every POST).
        ({**EVIL, "Content-Type": "application/x-www-form-urlencoded"}, "reason=x"),
        ({**EVIL, "Content-Type": "text/plain"}, '{"reason": "x"}'),
        ({**EVIL, "Content-Type": "multipart/form-data; boundary=x"}, "--x--"),
        (
            {"Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"},
            '{"reason": "x"}',
        ),
        # JSON from a foreign origin (what a preflighted fetch would send).
        ({**JSON, "Origin": "https://evil.example"}, "{}"),
        ({**JSON, "Sec-Fetch-Site": "cross-site"}, "{}"),
        ({**JSON, "Origin": "null"}, "{}"),
    ],
)
def test_a_cross_site_request_cancels_nothing(
    app_sse: tuple[Flask, SSEResilience], headers: dict[str, str], body: str
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    client = app.test_client()
    login(client, "alice")  # the victim's session cookie goes along
    refused = client.post(f"/sse/streams/{sid}/cancel", headers=headers, data=body)
    assert refused.status_code == 403
    assert refused.json["error"] == "cross_site_request"
    assert sse.get_stream(sid, app=app).cancel is None


@pytest.mark.parametrize(
    "headers",
    [
        # A form of the app's own page: refused all the same, but told why.
        {
            "Origin": "http://localhost",
            "Content-Type": "application/x-www-form-urlencoded",
        },
        {"Content-Type": "application/x-www-form-urlencoded"},  # no Origin: a script
        {"Origin": "https://partner.example", "Content-Type": "text/plain"},
        {},
    ],
)
def test_a_cancel_that_is_not_json_is_415_json_required(
    app_sse: tuple[Flask, SSEResilience], headers: dict[str, str]
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    client = app.test_client()
    login(client, "alice")
    refused = client.post(f"/sse/streams/{sid}/cancel", headers=headers, data="x=1")
    assert refused.status_code == 415
    assert refused.json == {
        "error": "json_required",
        "message": "Send the cancel as JSON, with Content-Type: application/json.",
    }
    assert sse.get_stream(sid, app=app).cancel is None


def test_same_origin_and_allow_listed_origins_may_cancel(
    app_sse: tuple[Flask, SSEResilience],
) -> None:
    app, sse = app_sse
    client = app.test_client()
    login(client, "alice")
    for origin in ("http://localhost", "https://partner.example"):
        sid = sse.open_stream("alice", app=app)
        headers = {**JSON, "Origin": origin}
        answer = client.post(f"/sse/streams/{sid}/cancel", headers=headers, data="{}")
        assert answer.status_code == 202, origin
    preflight = client.options(
        f"/sse/streams/{sid}/cancel",
        headers={
            "Origin": "https://partner.example",
            "Access-Control-Request-Method": "POST",
        },
    )
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "Content-Type" in preflight.headers["Access-Control-Allow-Headers"]


def test_a_stream_token_may_cancel_its_stream(
    app_sse: tuple[Flask, SSEResilience],
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    with app.app_context():
        token = sse.stream_token(sid, "alice")
    client = app.test_client()  # no cookie
    answer = client.post(f"/sse/streams/{sid}/cancel?token={token}", json={})
    assert answer.status_code == 202


def test_redis_down_is_503(
    make_app: AppFactory, redis_factory: type[RedisServer]
) -> None:
    server = redis_factory()
    app, sse = make_app({"SSE_RESILIENCE_REDIS_URL": server.url})
    sid = sse.open_stream("alice", app=app)
    client = app.test_client()
    login(client, "alice")
    server.kill()
    for answer in (
        client.post(f"/sse/streams/{sid}/cancel", json={}),
        client.get("/sse/keys/chat-1"),
    ):
        assert answer.status_code == 503
        assert answer.json["error"] == "redis_unavailable"


def test_find_a_stream_by_key(app_sse: tuple[Flask, SSEResilience]) -> None:
    app, sse = app_sse
    client = app.test_client()
    login(client, "alice")
    assert client.get("/sse/keys/chat-42").status_code == 204
    sid = sse.open_stream("alice", key="chat-42", app=app)
    found = client.get("/sse/keys/chat-42")
    assert found.status_code == 200
    assert found.json == {"status": "active", "streamId": sid, "key": "chat-42"}
    assert found.headers["Cache-Control"] == "no-store"
    with sse.producer(sid, app=app) as out:
        out.complete({"text": "hi"})
    ended = client.get("/sse/keys/chat-42").json
    assert ended["status"] == "completed" and ended["streamId"] == sid
    assert ended["terminalEventData"] == {"text": "hi"}
    # Another user's key is theirs alone: nothing found, nothing blocked.
    login(client, "mallory")
    assert client.get("/sse/keys/chat-42").status_code == 204
    assert client.get("/sse/keys/bad!key").status_code == 400
    assert client.get(f"/sse/keys/{'k' * 129}").status_code == 400
    client = app.test_client()
    assert client.get("/sse/keys/chat-42").status_code == 401
