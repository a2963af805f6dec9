"""Owners only, unguessable ids, tokens, CORS and abuse limits."""

from __future__ import annotations

import time

import pytest
import redis
from flask import Flask
from werkzeug.exceptions import HTTPException

from flask_sse_resilience import ConfigurationError, SSEResilience, StreamLimitExceeded
from flask_sse_resilience.store.leases import ConnectionLeases

from .conftest import AppFactory
from .leasing import acquire
from .streams import login, open_stream, read, types


def test_an_authorizer_shares_streams_and_hides_them_from_others(
    make_app: AppFactory,
) -> None:
    app, sse = make_app()
    teams = {"red": {"alice", "bob"}}

    @sse.authorize
    def team_members(stream: object, user_id: str) -> bool:
        return user_id in teams[stream.metadata["team"]]  # type: ignore[attr-defined]

    sid = sse.open_stream("alice", metadata={"team": "red"}, app=app)
    with sse.producer(sid, app=app) as out:
        out.complete({"n": 1})
    client = app.test_client()
    login(client, "bob")
    events, _ = read(open_stream(client, f"/sse/streams/{sid}"))
    assert types(events) == ["connected", "completed"]
    assert client.get(f"/sse/streams/{sid}/recover").json["status"] == "completed"
    login(client, "mallory")
    refused = client.get(f"/sse/streams/{sid}")
    unknown = client.get("/sse/streams/nosuchstream")
    assert refused.status_code == unknown.status_code == 404
    assert refused.data == unknown.data


def test_stream_id_rule_narrows_but_never_widens(make_app: AppFactory) -> None:
    app, sse = make_app({"SSE_RESILIENCE_STREAM_ID_PATTERN": r"job-[0-9]+"})
    assert sse.open_stream("alice", stream_id="job-7", app=app) == "job-7"
    with pytest.raises(ValueError, match="job-"):
        sse.open_stream("alice", stream_id="chat-7", app=app)
    client = app.test_client()
    login(client, "alice")
    assert client.get("/sse/streams/chat-7").status_code == 400
    wide, wide_sse = make_app({"SSE_RESILIENCE_STREAM_ID_PATTERN": r".*"})
    for bad in ("a{b}", "a b", "a/b", "ä"):
        with pytest.raises(ValueError):
            wide_sse.open_stream("alice", stream_id=bad, app=wide)
    with pytest.raises(ConfigurationError, match="STREAM_ID_PATTERN"):
        make_app({"SSE_RESILIENCE_STREAM_ID_PATTERN": "("})


def test_stream_tokens_are_bound_to_stream_and_user_and_expire(
    make_app: AppFactory,
) -> None:
    app, sse = make_app({"SSE_RESILIENCE_TOKEN_MAX_AGE": 1})
    sid = sse.open_stream("alice", app=app)
    other = sse.open_stream("alice", app=app)
    with sse.producer(sid, app=app) as out:
        out.complete({"n": 1})
    token = sse.stream_token(sid, "alice", app=app)
    anonymous = app.test_client()  # no session cookie at all
    events, _ = read(open_stream(anonymous, f"/sse/streams/{sid}?token={token}"))
    assert types(events) == ["connected", "completed"]
    recovered = anonymous.get(f"/sse/streams/{sid}/recover?token={token}")
    assert recovered.json["status"] == "completed"
    for url in (
        f"/sse/streams/{other}?token={token}",  # another stream
        f"/sse/streams/{sid}?token={token[:-2]}xx",  # tampered
        f"/sse/streams/{sid}?token=",  # empty
        f"/sse/streams/{sid}?token={'a' * 5000}",  # huge
    ):
        refused = anonymous.get(url)
        assert refused.status_code == 401, url
        assert refused.json["error"] == "invalid_stream_token"
    bob = sse.stream_token(sid, "bob", app=app)  # a valid token for a non-owner
    assert anonymous.get(f"/sse/streams/{sid}?token={bob}").status_code == 404
    time.sleep(2.1)
    expired = anonymous.get(f"/sse/streams/{sid}?token={token}")
    assert expired.status_code == 401


def test_stream_token_defaults_to_the_current_user(make_app: AppFactory) -> None:
    app, sse = make_app()
    sid = sse.open_stream("alice", app=app)

    @app.get("/token/<sid>")
    def token(sid: str) -> str:
        return sse.stream_token(sid)

    client = app.test_client()
    with pytest.raises(RuntimeError, match="signed-in user"):
        client.get(f"/token/{sid}")
    login(client, "alice")
    token_text = client.get(f"/token/{sid}").text
    recover = app.test_client().get(f"/sse/streams/{sid}/recover?token={token_text}")
    assert recover.json["status"] == "active"


def test_cors_is_off_unless_origins_are_listed(make_app: AppFactory) -> None:
    app, sse = make_app()
    sid = sse.open_stream("alice", app=app)
    client = app.test_client()
    login(client, "alice")
    url = f"/sse/streams/{sid}/recover"
    plain = client.get(url, headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in plain.headers
    app2, sse2 = make_app(
        {"SSE_RESILIENCE_CORS_ORIGINS": "https://app.example, https://b.example"}
    )
    sid2 = sse2.open_stream("alice", app=app2)
    client2 = app2.test_client()
    login(client2, "alice")
    url2 = f"/sse/streams/{sid2}/recover"
    allowed = client2.get(url2, headers={"Origin": "https://app.example"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert allowed.headers["Access-Control-Allow-Credentials"] == "true"
    assert "Origin" in allowed.headers["Vary"]
    other = client2.get(url2, headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    denied = client2.get(
        "/sse/streams/x/recover", headers={"Origin": "https://b.example"}
    )
    assert denied.status_code == 404  # errors carry CORS too, so clients can read
    assert denied.headers["Access-Control-Allow-Origin"] == "https://b.example"
    for bad in ("*", "app.example", "https://a.example/path"):
        with pytest.raises(ConfigurationError, match="CORS_ORIGINS"):
            make_app({"SSE_RESILIENCE_CORS_ORIGINS": bad})


def test_connections_per_user_are_limited_across_apps(
    make_app: AppFactory, r: redis.Redis
) -> None:
    config = {"SSE_RESILIENCE_MAX_CONNECTIONS_PER_USER": 2}
    worker_a, sse = make_app(config)
    worker_b, _ = make_app(config)  # another "worker" on the same Redis
    sid = sse.open_stream("alice", app=worker_a)
    clients = [worker_a.test_client(), worker_b.test_client(), worker_a.test_client()]
    for client in clients:
        login(client, "alice")
    first = open_stream(clients[0], f"/sse/streams/{sid}")
    second = open_stream(clients[1], f"/sse/streams/{sid}")
    third = open_stream(clients[2], f"/sse/streams/{sid}")
    assert first.status_code == second.status_code == 200
    assert third.status_code == 429
    assert third.json["error"] == "too_many_connections"
    assert int(third.headers["Retry-After"]) >= 1
    other = worker_b.test_client()
    login(other, "bob")  # bob has his own budget (and gets a 404 here)
    assert open_stream(other, f"/sse/streams/{sid}").status_code == 404
    first.close()  # released when the response closes, even never iterated
    fourth = open_stream(clients[2], f"/sse/streams/{sid}")
    assert fourth.status_code == 200
    second.close()
    fourth.close()
    assert (
        r.zcard(worker_a.extensions["sse_resilience"].keys.user_connections("alice"))
        == 0
    )


def test_a_dead_workers_leases_expire(r: redis.Redis) -> None:
    from flask_sse_resilience.store.keys import Keys

    dead = ConnectionLeases(r, Keys("sse:"), limit=1, interval=0.2)
    assert acquire(dead, "alice") is not None
    dead.stop()  # the worker dies: no renewals, no releases
    live = ConnectionLeases(r, Keys("sse:"), limit=1, interval=0.2)
    assert acquire(live, "alice") is None
    time.sleep(0.7)  # three intervals
    assert acquire(live, "alice") is not None
    live.stop()


def test_renewed_leases_stay(r: redis.Redis) -> None:
    from flask_sse_resilience.store.keys import Keys

    leases = ConnectionLeases(r, Keys("sse:"), limit=1, interval=0.2)
    lease = acquire(leases, "alice")
    assert lease is not None
    time.sleep(1.0)  # several lease lifetimes, renewed in the background
    assert acquire(leases, "alice") is None
    leases.release(lease)
    assert acquire(leases, "alice") is not None
    leases.stop()


def test_active_streams_per_user_are_limited(make_app: AppFactory) -> None:
    app, sse = make_app({"SSE_RESILIENCE_MAX_STREAMS_PER_USER": 2})
    first = sse.open_stream("alice", app=app)
    sse.open_stream("alice", app=app)
    with pytest.raises(StreamLimitExceeded) as refused:
        sse.open_stream("alice", app=app)
    # A data-layer error (an RQ job may call open_stream), not an HTTP one;
    # a view that lets it escape answers 429 (the next test).
    assert not isinstance(refused.value, HTTPException)
    assert refused.value.error_code == "too_many_streams"
    sse.open_stream("bob", app=app)  # per user
    with sse.producer(first, app=app) as out:
        out.complete(None)
    sse.open_stream("alice", app=app)  # an ended stream no longer counts


def test_open_stream_limit_is_a_429_json_from_a_view(make_app: AppFactory) -> None:
    app, sse = make_app({"SSE_RESILIENCE_MAX_STREAMS_PER_USER": 1})

    @app.post("/start")
    def start() -> str:
        return sse.open_stream("alice")

    client = app.test_client()
    assert client.post("/start").status_code == 200
    refused = client.post("/start")
    assert refused.status_code == 429
    assert refused.json["error"] == "too_many_streams"


def test_the_unused_constructor_path(r: redis.Redis) -> None:
    app = Flask(__name__)
    SSEResilience(app, redis=r)
    assert app.extensions["sse_resilience"].settings.max_connections_per_user == 20
