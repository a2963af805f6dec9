from __future__ import annotations

import re
from collections.abc import Callable

import redis

from flask_sse_resilience import metrics
from flask_sse_resilience.store.keys import Keys
from harness.redis_server import RedisServer

from .conftest import AppFactory
from .streams import login, open_stream, read

KEYS = Keys("sse:")


def value(name: str, labels: str = "") -> float:
    text = metrics.scrape().decode()
    match = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_metrics_follow_streams_clients_and_sweeps(
    make_app: AppFactory, r: redis.Redis
) -> None:
    # No scheduled guardian: the one sweep counted below is the explicit one.
    app, sse = make_app({"SSE_RESILIENCE_METRICS": "true"}, guardian_enabled=False)
    sent = value("sse_resilience_events_sent_total")
    replays = value("sse_resilience_replays_total")
    orphaned = value("sse_resilience_orphaned_total")
    cancelled = value("sse_resilience_cancelled_total")
    sweeps = value("sse_resilience_guardian_sweep_seconds_count")

    sid = sse.open_stream("alice", app=app)
    stale = sse.open_stream("alice", app=app)
    with sse.producer(sid, app=app) as out:
        first = out.send("token", 1)
        out.send("token", 2)
    assert value("sse_resilience_events_sent_total") == sent + 2

    client = app.test_client()
    login(client, "alice")
    live = open_stream(client, f"/sse/streams/{stale}")
    body = iter(live.response)
    next(body)
    next(body)  # following now
    assert value("sse_resilience_connected_clients") >= 1
    read(open_stream(client, f"/sse/streams/{sid}", first))
    assert value("sse_resilience_replays_total") == replays + 1

    assert value("sse_resilience_active_streams", '{prefix="sse:"}') == 1
    r.hset(KEYS.stream(stale), "lastHeartbeat", 0)
    r.zadd(KEYS.active_of(stale), {stale: 0})
    assert value("sse_resilience_heartbeat_lag_seconds", '{prefix="sse:"}') > 1e6
    sse.guardian(app).run_once()
    read(live)
    assert value("sse_resilience_orphaned_total") == orphaned + 1
    assert value("sse_resilience_guardian_sweep_seconds_count") == sweeps + 1
    assert value("sse_resilience_active_streams", '{prefix="sse:"}') == 0
    assert value("sse_resilience_connected_clients") == 0
    stopped = sse.open_stream("alice", app=app)
    with sse.producer(stopped, app=app) as out:
        out.cancel()
    assert value("sse_resilience_cancelled_total") == cancelled + 1


def test_a_closed_app_leaves_the_scrape(
    make_app: AppFactory, redis_factory: Callable[[], RedisServer]
) -> None:
    """A scrape reads Redis for every app that turned metrics on; once an app
    is closed its Redis is no longer read or reported (it may be gone: a
    scrape would spend the retry budget on it)."""
    server = redis_factory()
    app, _ = make_app(
        {"SSE_RESILIENCE_METRICS": "true", "SSE_RESILIENCE_REDIS_URL": server.url}
    )
    labels = f'{{node="master",redis="{server.url}"}}'
    assert value("sse_resilience_redis_memory_used_bytes", labels) > 0
    app.extensions["sse_resilience"].close()
    assert value("sse_resilience_redis_memory_used_bytes", labels) == 0.0
