from __future__ import annotations

import json
import logging

import pytest
import redis
from flask import Flask, session

from flask_sse_resilience import SSEResilience
from flask_sse_resilience.store.keys import Keys
from flask_sse_resilience.web.dashboard import PER_PAGE
from harness.redis_server import RedisServer
from harness.roundtrips import RoundTrips, counting_client

from .conftest import AppFactory
from .streams import login, open_stream, read

KEYS = Keys("sse:")


def admin_app(
    make_app: AppFactory, config: dict[str, object] | None = None, **options: object
) -> tuple[Flask, SSEResilience]:
    """An app with the dashboard on, for the user ``root``."""
    app, sse = make_app(
        {"SSE_RESILIENCE_DASHBOARD": True, **(config or {})},
        guardian_enabled=False,
        **options,
    )
    sse.dashboard_auth(lambda: session.get("user") == "root")
    return app, sse


def age(r: redis.Redis, sid: str, seconds: float) -> None:
    then = int(r.time()[0]) * 1000 - int(seconds * 1000)
    r.hset(KEYS.stream(sid), "lastHeartbeat", then)
    r.zadd(KEYS.active_of(sid), {sid: then})


def test_off_by_default_and_never_open(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    app, _ = make_app()
    assert app.test_client().get("/sse/_dashboard").status_code == 404
    # On, but without an admin check: still 404, and the operator is told why.
    app, _ = make_app({"SSE_RESILIENCE_DASHBOARD": True})
    client = app.test_client()
    login(client, "root")
    with caplog.at_level(logging.ERROR):
        response = client.get("/sse/_dashboard/snapshot")
    assert response.status_code == 404 and response.json["error"] == "not_found"
    assert "no @sse.dashboard_auth" in caplog.text


@pytest.mark.parametrize("late", [False, True])
def test_a_dashboard_that_is_off_says_how_to_turn_it_on(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture, late: bool
) -> None:
    """Off (or switched on after init_app, which reads the config once): the
    404 stays the same for everyone but an admin, and the log says why."""
    app, sse = make_app(guardian_enabled=False)
    sse.dashboard_auth(lambda: session.get("user") == "root")
    if late:
        app.config["SSE_RESILIENCE_DASHBOARD"] = True
    hint = (
        "SSE_RESILIENCE_DASHBOARD was set after init_app, which reads the config "
        "once: set it before SSEResilience(app) / init_app."
        if late
        else "The dashboard is off: set SSE_RESILIENCE_DASHBOARD = True (before "
        "init_app) and an admin check (@sse.dashboard_auth)."
    )
    client = app.test_client()
    for _ in range(2):
        anonymous = client.get("/sse/_dashboard")
        assert anonymous.status_code == 404
        assert anonymous.json == {"error": "not_found", "message": "Not found."}
    login(client, "alice")
    assert client.get("/sse/_dashboard/snapshot").json["message"] == "Not found."
    login(client, "root")
    for url in ("/sse/_dashboard", "/sse/_dashboard/stream"):
        admin = client.get(url)
        assert admin.status_code == 404
        assert admin.json == {"error": "not_found", "message": hint}
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    expected = [f"/sse/_dashboard asked for: {hint}"]  # once per process
    if late:
        expected.insert(
            0,
            "SSE_RESILIENCE_DASHBOARD was set after init_app (to True), so it has no "
            "effect: set it before SSEResilience(app) / init_app reads the config",
        )
    assert logged == expected


def test_admins_only(make_app: AppFactory) -> None:
    app, _ = admin_app(make_app)
    client = app.test_client()
    for url in (
        "/sse/_dashboard",
        "/sse/_dashboard/snapshot",
        "/sse/_dashboard/stream",
    ):
        assert client.get(url).status_code == 403  # nobody signed in
    login(client, "alice")
    refused = client.get("/sse/_dashboard/snapshot")
    assert refused.status_code == 403 and refused.json["error"] == "forbidden"
    login(client, "root")
    page = client.get("/sse/_dashboard")
    assert page.status_code == 200 and b"static/dashboard.js" in page.data
    assert page.headers["Cache-Control"] == "no-store"
    with client.get("/sse/static/dashboard.js") as script:
        assert script.status_code == 200
    for bad in ("?sort=nope", "?page=0", "?page=x", "?page=99999", "?order=up"):
        answer = client.get("/sse/_dashboard/snapshot" + bad)
        assert answer.status_code == 400 and answer.json["error"] == "bad_request"


def test_the_numbers_are_what_redis_holds(make_app: AppFactory, r: redis.Redis) -> None:
    app, sse = admin_app(make_app, {"SSE_RESILIENCE_STALE_THRESHOLD": 10})
    ids = [sse.open_stream(f"user{i % 3}", "chat", app=app) for i in range(120)]
    with sse.producer(ids[0], app=app) as out:
        for k in range(7):
            out.send("token", {"k": k})
    age(r, ids[1], 6)  # past half the stale threshold: a warning
    age(r, ids[2], 30)  # past the threshold: stale, not yet swept
    client = app.test_client()
    login(client, "root")
    snap = client.get("/sse/_dashboard/snapshot").json
    assert snap["counts"]["active"] == 119  # ids[0] completed
    assert snap["counts"]["completed"] == 0  # counted, not flushed yet
    table = snap["streams"]
    assert table["total"] == 119 and len(table["rows"]) == PER_PAGE
    # Longest without a heartbeat first: the stale one, then the warning.
    assert [row["id"] for row in table["rows"][:2]] == [ids[2], ids[1]]
    assert [row["health"] for row in table["rows"][:3]] == ["stale", "warning", "ok"]
    assert table["rows"][0]["owner"] == "user2" and table["rows"][0]["type"] == "chat"
    last = client.get("/sse/_dashboard/snapshot?page=3").json["streams"]["rows"]
    assert len(last) == 119 - 2 * PER_PAGE
    by_events = client.get("/sse/_dashboard/snapshot?sort=events&order=desc").json
    assert by_events["streams"]["rows"][0]["events"] == 0  # ids[0] has ended
    by_owner = client.get("/sse/_dashboard/snapshot?sort=owner").json["streams"]
    owners = [row["owner"] for row in by_owner["rows"]]
    assert owners == sorted(owners)
    # Counters reach Redis once per interval (here: on demand) and show up.
    app.extensions["sse_resilience"].stats.flush()
    snap = client.get("/sse/_dashboard/snapshot").json
    assert snap["counts"]["completed"] == 1
    assert sum(m["events"] for m in snap["history"]) == 7
    assert len(snap["history"]) == 15
    sse.guardian(app).run_once(force=True)
    app.extensions["sse_resilience"].stats.flush()
    snap = client.get("/sse/_dashboard/snapshot").json
    assert snap["counts"]["orphaned"] == 1 and snap["counts"]["active"] == 118
    assert snap["sweep"]["orphaned"] == 1
    age(r, ids[5], 30)
    sse.cancel(ids[5], app=app)  # its producer is silent: ended at once
    app.extensions["sse_resilience"].stats.flush()
    snap = client.get("/sse/_dashboard/snapshot").json
    assert snap["counts"]["cancelled"] == 1 and snap["counts"]["active"] == 117
    assert [w["worker"] for w in snap["workers"]] == [
        app.extensions["sse_resilience"].stats.worker
    ]


def test_clients_and_connects_are_counted_without_a_round_trip(
    make_app: AppFactory, redis_server: RedisServer
) -> None:
    counted = counting_client(redis_server.port)
    plain, plain_sse = make_app(guardian_enabled=False, redis=counted)
    app, sse = admin_app(make_app, redis=counted)

    def connect(each: Flask, each_sse: SSEResilience) -> tuple[int, object]:
        sid = each_sse.open_stream("alice", app=each)
        client = each.test_client()
        login(client, "alice")
        warm = open_stream(client, f"/sse/streams/{sid}")  # loads the scripts
        frames = iter(warm.response)
        next(frames)
        next(frames)  # a connection, counted once its body is under way
        warm.close()  # type: ignore[attr-defined]
        # The request's own round trips: the dashboard app's stats loop ticks
        # every 0.3 s in its own thread and, under load, fell in the window.
        with RoundTrips(this_thread=True) as rt:
            response = open_stream(client, f"/sse/streams/{sid}")
            assert response.status_code == 200, response.data
            body = iter(response.response)
            next(body)
        next(body)  # past the replay: following live events now
        return rt.count, response

    without, plain_response = connect(plain, plain_sse)
    with_dashboard, response = connect(app, sse)
    assert with_dashboard == without
    assert without >= 1, "the measured window saw none of the request's round trips"
    stats = app.extensions["sse_resilience"].stats
    stats.flush()
    workers = counted.hgetall(KEYS.stats_workers)
    assert json.loads(workers[stats.worker])["clients"] == 1
    history = counted.hgetall(KEYS.stats_minute(int(counted.time()[0]) // 60))
    assert int(history.get("connects", 0)) == 2  # the warm-up and the measured one
    response.close()  # type: ignore[attr-defined]
    plain_response.close()  # type: ignore[attr-defined]
    for each in (plain, app):
        each.extensions["sse_resilience"].close()
    counted.connection_pool.disconnect()


def test_the_page_refreshes_over_its_own_stream(make_app: AppFactory) -> None:
    app, sse = admin_app(make_app)
    sse.open_stream("alice", app=app)
    client = app.test_client()
    login(client, "root")
    response = client.get("/sse/_dashboard/stream?sort=age", buffered=False)
    assert response.headers["Content-Type"].startswith("text/event-stream")
    events, _ = read(response, limit=3, seconds=6)  # the retry hint, 2 snapshots
    snapshots = [json.loads(e.data) for e in events if e.data]
    assert len(snapshots) == 2
    assert snapshots[0]["counts"]["active"] == 1
    assert snapshots[1]["streams"]["sort"] == "age"
    response.close()
