from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
import redis
from flask import Flask

from flask_sse_resilience import (
    InvalidEventError,
    SSEResilience,
    StreamNotActiveError,
    StreamState,
)
from flask_sse_resilience.store.keys import Keys

from .conftest import AppFactory

KEYS = Keys("sse:")


@pytest.fixture
def app_sse(make_app: AppFactory) -> tuple[Flask, SSEResilience]:
    return make_app({"SSE_RESILIENCE_MAX_EVENT_BYTES": 1024})


@pytest.mark.parametrize(
    ("event_type", "data", "match"),
    [
        ("a\nb", {}, "event type"),
        ("a\rb", {}, "event type"),
        ("a\0b", {}, "event type"),
        ("x" * 65, {}, "event type"),
        ("", {}, "event type"),
        ("completed", {}, "reserved"),
        ("connected", {}, "reserved"),
        ("token", {1, 2}, "^event data is not JSON-serializable: data is a set$"),
        ("token", float("nan"), "not JSON-serializable: data is nan, which JSON "),
        (
            "token",
            {"when": datetime(2024, 5, 1)},
            r"^event data is not JSON-serializable: data\['when'\] is a datetime "
            r"\(convert it first, say with \.isoformat\(\)\)$",
        ),
        ("token", "x" * 2000, "over the limit"),
    ],
)
def test_bad_events_raise_and_write_nothing(
    app_sse: tuple[Flask, SSEResilience],
    r: redis.Redis,
    event_type: str,
    data: object,
    match: str,
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    with sse.producer(sid, app=app) as out:
        with pytest.raises(InvalidEventError, match=match):
            out.send(event_type, data)
        assert r.xlen(KEYS.log(sid)) == 0
        out.send("token", "fine")  # the producer is still usable
    assert [e.type for e in sse.event_log(app).read(sid, None)] == [
        "token",
        "completed",
    ]


def test_an_exception_fails_the_stream_and_propagates(
    app_sse: tuple[Flask, SSEResilience],
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    with pytest.raises(KeyError), sse.producer(sid, app=app) as out:
        out.send("token", 1)
        raise KeyError("boom")
    completion = sse.get_completion(sid, app=app)
    assert completion is not None
    assert completion.terminal_event_type == "failed"
    assert completion.terminal_event_data == {"reason": "error", "error": "KeyError"}
    assert sse.get_stream(sid, app=app).state is StreamState.FAILED


def test_leaving_the_block_completes_the_stream(
    app_sse: tuple[Flask, SSEResilience],
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    with sse.producer(sid, app=app) as out:
        out.send("token", 1)
    assert sse.get_stream(sid, app=app).state is StreamState.COMPLETED
    assert sse.get_completion(sid, app=app).terminal_event_data is None
    with pytest.raises(StreamNotActiveError), sse.producer(sid, app=app):
        pass


def test_explicit_fail_and_no_writes_after_the_end(
    app_sse: tuple[Flask, SSEResilience],
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    with sse.producer(sid, app=app) as out:
        out.fail({"reason": "quota"})
        with pytest.raises(StreamNotActiveError, match="already ended"):
            out.send("token", 1)
    assert sse.get_completion(sid, app=app).terminal_event_data == {"reason": "quota"}


def test_heartbeats_are_batched_per_process(
    app_sse: tuple[Flask, SSEResilience], r: redis.Redis
) -> None:
    app, sse = app_sse
    ids = [sse.open_stream("alice", app=app) for _ in range(3)]
    for sid in ids:
        r.hset(KEYS.stream(sid), "lastHeartbeat", 1)
    producers = [sse.producer(sid, app=app) for sid in ids]
    for p in producers:
        p.__enter__()
    heartbeater = app.extensions["sse_resilience"].heartbeater
    for sid in ids:
        r.hset(KEYS.stream(sid), "lastHeartbeat", 1)
    beats = heartbeater.beats
    heartbeater.beat()
    assert heartbeater.beats == beats + 1  # one pipeline for all three
    assert all(int(r.hget(KEYS.stream(sid), "lastHeartbeat")) > 1 for sid in ids)
    for p in producers:
        p.__exit__(None, None, None)
    r.hset(KEYS.stream(ids[0]), "lastHeartbeat", 1)
    heartbeater.beat()  # nothing left to keep alive
    assert r.hget(KEYS.stream(ids[0]), "lastHeartbeat") == "1"


def test_the_background_heartbeat_keeps_a_producing_stream_fresh(
    app_sse: tuple[Flask, SSEResilience], r: redis.Redis
) -> None:
    import time

    app, sse = app_sse  # heartbeat interval 0.3 s
    sid = sse.open_stream("alice", app=app)
    with sse.producer(sid, app=app):
        r.hset(KEYS.stream(sid), "lastHeartbeat", 1)
        deadline = time.monotonic() + 3
        while r.hget(KEYS.stream(sid), "lastHeartbeat") == "1":
            assert time.monotonic() < deadline, "no heartbeat within 3 s"
            time.sleep(0.05)


def test_retry_for_rides_out_a_redis_restart_without_doubling(
    make_app: AppFactory, redis_factory: type
) -> None:
    import threading
    import time

    server = redis_factory()
    app, sse = make_app({"SSE_RESILIENCE_REDIS_URL": server.url})
    sid = sse.open_stream("alice", app=app)
    with sse.producer(sid, app=app, retry_for=15) as out:
        out.send("token", 0)
        server.client().save()
        port = server.port
        server.kill()

        def restart() -> None:
            time.sleep(1.5)
            server.port = port
            server.start()

        # Joined before the test ends: the send may land while the restart
        # still waits for its PING, and a teardown stopping the server under
        # it failed a later test instead (seen under load with redis-py 7).
        restarter = threading.Thread(target=restart)
        restarter.start()
        out.send("token", 1)  # blocks until Redis is back, then lands once
    restarter.join(30)
    assert not restarter.is_alive()
    events = sse.event_log(app).read(sid, None)
    assert [(e.type, e.data) for e in events] == [
        ("token", 0),
        ("token", 1),
        ("completed", None),
    ]


def test_without_retry_for_an_outage_raises(
    make_app: AppFactory, redis_factory: type
) -> None:
    import redis as redis_py

    server = redis_factory()
    app, sse = make_app({"SSE_RESILIENCE_REDIS_URL": server.url})
    sid = sse.open_stream("alice", app=app)
    out = sse.producer(sid, app=app, retry_for=0).__enter__()
    server.kill()
    with pytest.raises(redis_py.ConnectionError):
        out.send("token", 1)


def rollback(r: redis.Redis, sid: str) -> Callable[[], None]:
    """Snapshot the stream's record and log now; the returned call puts that
    state back, as a promoted replica that missed the later writes has it."""
    keys = [KEYS.stream(sid), KEYS.log(sid)]
    raw = redis.Redis(connection_pool=r.connection_pool.__class__(
        **{**r.connection_pool.connection_kwargs, "decode_responses": False}
    ))  # fmt: skip
    dumps = [(key, raw.dump(key), raw.pttl(key)) for key in keys]

    def restore() -> None:
        for key, value, ttl in dumps:
            raw.restore(key, max(ttl, 0), value, replace=True)
        raw.close()

    return restore


def test_events_a_failover_lost_are_sent_again(
    app_sse: tuple[Flask, SSEResilience], r: redis.Redis
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    with sse.producer(sid, app=app) as out:
        out.send("token", 0)
        restore = rollback(r, sid)
        out.send("token", 1)
        out.send("token", 2)
        restore()  # Redis acknowledged tokens 1 and 2, then lost them
        out.send("token", 3)
        restore()  # and again, right before the end
        out.complete("done")
    events = sse.event_log(app).read(sid, None)
    assert [(e.seq, e.data) for e in events] == [
        (1, 0), (2, 1), (3, 2), (4, 3), (5, "done"),
    ]  # fmt: skip
    assert sse.get_stream(sid, app=app).state is StreamState.COMPLETED


def test_batches_a_failover_lost_are_sent_again(
    app_sse: tuple[Flask, SSEResilience], r: redis.Redis
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    with sse.producer(sid, app=app, coalesce_ms=60_000) as out:
        out.send("token", 0)
        out.flush()
        restore = rollback(r, sid)
        for i in (1, 2, 3):
            out.send("token", i)
        out.flush()  # one batch of three
        restore()  # Redis acknowledged the batch, then lost it
        out.send("token", 4)
        out.send("token", 5)
        out.complete("done")  # writes 4 and 5, finds the log behind, re-sends
    events = sse.event_log(app).read(sid, None)
    assert [(e.seq, e.data) for e in events] == [
        (1, 0), (2, 1), (3, 2), (4, 3), (5, 4), (6, 5), (7, "done"),
    ]  # fmt: skip


def test_more_lost_than_kept_is_a_conflict(
    app_sse: tuple[Flask, SSEResilience], r: redis.Redis, monkeypatch: Any
) -> None:
    from flask_sse_resilience import ProducerConflictError
    from flask_sse_resilience.produce import logwriter as writing

    monkeypatch.setattr(writing, "REPLAY", 2)
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    with pytest.raises(ProducerConflictError, match="more than the last 2"):
        with sse.producer(sid, app=app) as out:
            restore = rollback(r, sid)
            for i in range(4):
                out.send("token", i)
            restore()
            out.send("token", 4)
