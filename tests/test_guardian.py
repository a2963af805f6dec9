from __future__ import annotations

import json
import time

import pytest
import redis
from flask import Flask

from flask_sse_resilience import SSEResilience, StreamState, signals, wire
from flask_sse_resilience.store.guardian import StreamGuardian
from flask_sse_resilience.store.keys import Keys
from harness.redis_server import RedisServer
from harness.roundtrips import RoundTrips, counting_client
from harness.seeding import fill

from .conftest import AppFactory
from .streams import login, open_stream, read, types

KEYS = Keys("sse:")


@pytest.fixture
def app_sse(make_app: AppFactory) -> tuple[Flask, SSEResilience]:
    return make_app({"SSE_RESILIENCE_GUARDIAN_INTERVAL": 0.2})


def age(r: redis.Redis, sid: str, seconds: float = 60) -> None:
    """Make a stream look as if its last heartbeat was ``seconds`` ago."""
    now_ms = int(r.time()[0]) * 1000
    then = now_ms - int(seconds * 1000)
    r.hset(KEYS.stream(sid), "lastHeartbeat", then)
    r.zadd(KEYS.active_of(sid), {sid: then})


def test_a_sweep_orphans_stale_streams_atomically(
    app_sse: tuple[Flask, SSEResilience], r: redis.Redis
) -> None:
    app, sse = app_sse
    stale, fresh = sse.open_stream("alice", app=app), sse.open_stream("alice", app=app)
    age(r, stale)
    seen: list[str] = []

    def orphaned(sender: Flask, stream_id: str) -> None:
        assert sender is app
        seen.append(stream_id)

    signals.stream_orphaned.connect(orphaned, app)
    result = sse.guardian(app).run_once()
    signals.stream_orphaned.disconnect(orphaned, app)
    assert result.swept and result.orphaned == (stale,) and result.pruned == 0
    assert seen == [stale]
    record = sse.get_stream(stale, app=app)
    assert record is not None and record.state is StreamState.ORPHANED
    assert sse.get_stream(fresh, app=app).state is StreamState.ACTIVE
    completion = sse.get_completion(stale, app=app)
    assert completion.terminal_event_type == "failed"
    assert completion.terminal_event_data == {"reason": "orphaned"}
    assert sse.event_log(app).read(stale, None)[-1].type == "failed"
    assert r.zscore(KEYS.active_of(stale), stale) is None
    assert 295_000 < r.pttl(KEYS.log(stale)) <= 300_000
    client = app.test_client()
    login(client, "alice")
    body = client.get(f"/sse/streams/{stale}/recover").json
    assert body["status"] == "orphaned"
    assert body["terminalEventData"] == {"reason": "orphaned"}
    # A second sweep finds nothing left to do.
    again = sse.guardian(app).run_once()
    assert again.orphaned == () and again.pruned == 0


def test_never_orphans_a_stream_that_heartbeated_or_completed(
    app_sse: tuple[Flask, SSEResilience], r: redis.Redis
) -> None:
    app, sse = app_sse
    revived = sse.open_stream("alice", app=app)
    done = sse.open_stream("alice", app=app)
    age(r, revived)
    # The record heartbeated after the index was read: only the index is old.
    seconds, micros = r.time()  # to the millisecond: a whole second could
    # already be older than the 1 s stale threshold on a loaded machine
    r.hset(KEYS.stream(revived), "lastHeartbeat", int(seconds) * 1000 + micros // 1000)
    with sse.producer(done, app=app) as out:
        out.complete({"ok": True})
    r.zadd(KEYS.active_of(done), {done: 1})  # a stale index entry left behind
    result = sse.guardian(app).run_once()
    assert result.orphaned == ()
    assert result.pruned == 1  # the completed one left the index
    assert sse.get_stream(revived, app=app).state is StreamState.ACTIVE
    assert sse.get_completion(done, app=app).terminal_event_data == {"ok": True}


def test_expired_streams_leave_the_index_and_their_followers_are_told(
    app_sse: tuple[Flask, SSEResilience], r: redis.Redis
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    client = app.test_client()
    login(client, "alice")
    response = open_stream(client, f"/sse/streams/{sid}")
    body = iter(response.response)
    assert b"connected" in next(body)
    assert next(body) == wire.KEEPALIVE  # following live events now
    age(r, sid)
    r.delete(KEYS.stream(sid))  # gone, as if its TTL ran out
    result = sse.guardian(app).run_once()
    assert result.pruned == 1 and result.orphaned == ()
    assert sum(r.zcard(key) for key in KEYS.active_all()) == 0
    events, _ = read(response)
    # The sweep's notice says "expired"; the worker serving the client knows
    # the record's TTL had not run out (read on admission): "lost". (The
    # presence check, test_presence.py, may have told it first: the same.)
    assert [json.loads(e.data) for e in events] == [
        {"type": "failed", "data": {"reason": "lost"}}
    ]


def test_a_connected_client_gets_the_orphaned_event_and_the_end(
    app_sse: tuple[Flask, SSEResilience], r: redis.Redis
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    # A producer in some process that then died: it logged one event and its
    # heartbeat stopped.
    log = sse.event_log(app)
    log.append(
        sid, "dead-producer", log.claim(sid, "dead-producer").seq + 1, "token", "0"
    )
    client = app.test_client()
    login(client, "alice")
    response = open_stream(client, f"/sse/streams/{sid}")
    body = iter(response.response)
    assert b"connected" in next(body)
    assert b"token" in next(body)
    age(r, sid)
    sse.guardian(app).run_once()
    events, _ = read(response)
    assert types(events) == ["failed"]
    assert json.loads(events[0].data)["data"] == {"reason": "orphaned"}


def test_only_the_leader_sweeps_and_another_takes_over(
    app_sse: tuple[Flask, SSEResilience], r: redis.Redis
) -> None:
    app, _ = app_sse
    state = app.extensions["sse_resilience"]
    one, two = (
        StreamGuardian(r, state.keys, state.log, state.settings) for _ in range(2)
    )
    assert one.run_once().swept
    assert two.run_once().skipped == "not-leader"
    assert one.run_once().swept  # renews its lock
    one.stop()  # a clean stop gives the lock up at once
    assert two.run_once().swept
    assert one.run_once().skipped == "not-leader"
    # A leader that dies stops renewing: its lock lapses within one TTL.
    # (ticks every min(0.2, (1 - 0.3) / 5) = 0.14 s)
    assert two.lock_ttl_ms == int((0.14 * 1.5 + 0.5) * 1000)
    time.sleep(two.lock_ttl_ms / 1000 + 0.1)
    assert one.run_once().swept
    assert int(r.get(KEYS.guardian_sweeps)) == 4
    last = r.hgetall(KEYS.guardian_last)
    assert last["worker"] == one.token and last["sweep"] == "4"


def test_after_a_gap_in_sweeps_every_leader_gives_a_grace(
    app_sse: tuple[Flask, SSEResilience], r: redis.Redis
) -> None:
    """The grace after an outage lives in Redis, not in the worker that saw
    the outage: a guardian that never saw an error honours it too."""
    app, sse = app_sse
    state = app.extensions["sse_resilience"]
    settings = state.settings
    sid = sse.open_stream("alice", app=app)
    one = StreamGuardian(r, state.keys, state.log, settings)
    assert one.run_once().swept  # the shards are watched from now on
    age(r, sid)  # its producer could not heartbeat through an outage...
    # ...during which no sweep reached the shard: a gap in its watch.
    time.sleep(settings.guardian_gap + 0.1)
    one.stop()
    other = StreamGuardian(r, state.keys, state.log, settings)  # saw no error
    result = other.run_once()
    assert result.swept and result.orphaned == ()
    assert result.grace == settings.shards
    assert sse.get_stream(sid, app=app).state is StreamState.ACTIVE
    # The producer heartbeats within the grace: never orphaned.
    state.registry.heartbeat([sid])
    age(r, sid, settings.stale_threshold * 0.5)
    assert other.run_once().orphaned == ()
    # One that stays silent is orphaned once the grace is over.
    age(r, sid)
    deadline = time.monotonic() + settings.stale_threshold + 1
    while not other.run_once().orphaned:
        assert time.monotonic() < deadline
        time.sleep(settings.guardian_tick)
    assert sse.get_stream(sid, app=app).state is StreamState.ORPHANED


def test_a_forced_sweep_judges_streams_in_their_grace(
    app_sse: tuple[Flask, SSEResilience], r: redis.Redis
) -> None:
    app, sse = app_sse
    guardian = sse.guardian(app)
    sid = sse.open_stream("alice", app=app)
    guardian.run_once()
    age(r, sid)
    time.sleep(guardian.settings.guardian_gap + 0.1)
    assert guardian.run_once().orphaned == ()  # in its grace
    assert guardian.run_once(force=True).orphaned == (sid,)


def test_the_scheduled_guardian_survives_redis_outages(
    make_app: AppFactory, redis_factory: type[RedisServer]
) -> None:
    server = redis_factory()
    app, sse = make_app(
        {
            "SSE_RESILIENCE_REDIS_URL": server.url,
            "SSE_RESILIENCE_GUARDIAN_INTERVAL": 0.1,
        }
    )
    guardian = sse.guardian(app)
    guardian.start()
    observer = server.client()
    deadline = time.monotonic() + 5
    while int(observer.get(KEYS.guardian_sweeps) or 0) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    observer.client_pause(1000)  # ticks stall meanwhile: a gap in the watch
    deadline = time.monotonic() + 10
    while guardian.last_result is None or not guardian.last_result.grace:
        assert time.monotonic() < deadline, guardian.last_result
        time.sleep(0.05)
    assert guardian.running
    guardian.stop()
    assert not guardian.running


def test_sweep_cost_is_constant_round_trips(redis_server: RedisServer) -> None:
    client = counting_client(redis_server.port)
    client.flushall()
    app = Flask(__name__)
    SSEResilience(app, redis=client)
    guardian = app.extensions["sse_resilience"].guardian
    fill(client, 10, 5)
    assert len(guardian.run_once().orphaned) == 2  # also loads every script
    client.flushall()
    fill(client, 10_000, 100)
    with RoundTrips() as rt:
        # force: a guardian of an earlier test may still be finishing a tick
        result = guardian.run_once(force=True)
    assert len(result.orphaned) == 100
    # The lock, every shard's candidates (one pipeline), the compare-and-set
    # orphanings (one pipeline), their users' counts (one pipeline), the record.
    assert rt.count == 5
    print(f"sweep over 10,000 active / 100 stale: {result.seconds * 1000:.1f} ms")
    app.extensions["sse_resilience"].close()
    client.flushall()


def test_guardian_disabled_never_schedules(make_app: AppFactory) -> None:
    app, _ = make_app({"SSE_RESILIENCE_GUARDIAN_ENABLED": "false"})
    app.test_client().get("/sse/streams/x/recover")
    assert not app.extensions["sse_resilience"].guardian.running
    enabled, _ = make_app()
    enabled.test_client().get("/sse/streams/x/recover")
    assert enabled.extensions["sse_resilience"].guardian.running
