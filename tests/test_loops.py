"""Background loops survive any exception and are restarted if they die;
clean-up writes land once Redis is back. Failures are injected into the loops'
own code; Redis is always the real server, and a loop "still runs" only when
its next write is seen in Redis."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
import redis

from flask_sse_resilience.redisio.commands import run_pipeline
from flask_sse_resilience.redisio.connect import make_client
from flask_sse_resilience.redisio.loops import Deferred, Periodic, revive_all
from flask_sse_resilience.store.keys import Keys
from flask_sse_resilience.store.leases import ConnectionLeases
from harness.redis_server import RedisServer

from .conftest import AppFactory
from .leasing import acquire

KEYS = Keys("sse:")


def eventually(check: Callable[[], object], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.02)


def quick_client(server: RedisServer) -> redis.Redis:
    """The package's client, with reads timing out after 0.3 s (not 5 s)."""
    client = make_client(server.url, max_connections=2)
    client.connection_pool.connection_kwargs["socket_timeout"] = 0.3
    return client  # type: ignore[return-value]


class Flaky:
    """Wraps a loop's job: raises ``error`` for the next ``times`` calls."""

    def __init__(self, job: Callable[[], object], error: BaseException) -> None:
        self.job, self.error, self.times = job, error, 0

    def __call__(self) -> object:
        if self.times:
            self.times -= 1
            raise self.error
        return self.job()


def test_a_periodic_loop_survives_any_exception(r: redis.Redis) -> None:
    loop = Periodic("probe", lambda: r.incr("probe"), 0.05, retry=0.02)
    flaky = Flaky(loop.job, RuntimeError("boom"))
    loop.job = flaky
    flaky.times = 3
    loop.ensure()
    eventually(lambda: int(r.get("probe") or 0) >= 2)
    assert loop.failures == 3 and loop.restarts == 0
    loop.stop(timeout=1)
    assert not loop.alive


KILLS_A_THREAD = pytest.mark.filterwarnings(
    "ignore::pytest.PytestUnhandledThreadExceptionWarning"
)


@KILLS_A_THREAD
def test_a_loop_whose_thread_ended_is_restarted_by_another(r: redis.Redis) -> None:
    victim = Periodic("victim", lambda: r.incr("victim"), 0.05)
    flaky = Flaky(victim.job, SystemExit())  # ends the thread, not caught
    victim.job = flaky
    flaky.times = 1
    victim.ensure()
    eventually(lambda: not victim.alive)
    witness = Periodic("witness", lambda: None, 0.05)
    witness.ensure()  # every loop revives the others after each run
    eventually(lambda: int(r.get("victim") or 0) >= 1)
    assert victim.restarts == 1
    for loop in (victim, witness):
        loop.stop(timeout=1)


def test_heartbeats_leases_and_stats_outlive_failures(
    make_app: AppFactory, r: redis.Redis
) -> None:
    app, sse = make_app({"SSE_RESILIENCE_DASHBOARD": True})
    state = app.extensions["sse_resilience"]
    sid = sse.open_stream("alice", app=app)
    # Heartbeats: the beat fails twice, then lands in Redis again.
    hb = state.heartbeater
    hb.add(sid)
    flaky = Flaky(hb.loop.job, RuntimeError("injected"))
    hb.loop.job, flaky.times = flaky, 2
    before = int(r.hget(KEYS.stream(sid), "lastHeartbeat"))
    eventually(lambda: int(r.hget(KEYS.stream(sid), "lastHeartbeat")) > before)
    assert hb.loop.failures >= 2
    # Leases: renewal fails with a Redis error class, then renews.
    lease = acquire(state.leases, "alice")
    assert lease is not None
    key = KEYS.user_connections("alice")
    renew = Flaky(state.leases.loop.job, redis.exceptions.ClusterDownError("x"))
    state.leases.loop.job, renew.times = renew, 2
    first = r.zscore(key, lease)
    eventually(lambda: r.zscore(key, lease) > first)
    # Stats: the flush fails (a broken client-count callback), then lands.
    stats = state.stats
    stats.clients = Flaky(stats.clients, ValueError("injected"))  # type: ignore[assignment]
    stats.clients.times = 2  # type: ignore[attr-defined]
    stats.count("events", 5)
    eventually(lambda: r.hget(KEYS.stats_workers, stats.worker) is not None)
    eventually(
        lambda: any(r.hget(k, "events") == "5" for k in r.scan_iter("sse:{stats}:m:*"))
    )
    hb.discard(sid)


def test_the_guardian_scheduler_is_restarted_if_it_dies(
    make_app: AppFactory, r: redis.Redis
) -> None:
    app, sse = make_app({"SSE_RESILIENCE_GUARDIAN_INTERVAL": 0.1})
    guardian = sse.guardian(app)
    guardian.start()
    eventually(lambda: int(r.get(KEYS.guardian_sweeps) or 0) >= 1)
    guardian._scheduler.shutdown(wait=True)  # its thread is gone
    revive_all()  # what every loop and every request does
    assert guardian.running
    count = int(r.get(KEYS.guardian_sweeps))
    eventually(lambda: int(r.get(KEYS.guardian_sweeps)) > count)
    guardian.stop()


def test_a_broker_listener_that_died_is_restarted(
    make_app: AppFactory, r: redis.Redis
) -> None:
    app, sse = make_app()
    state = app.extensions["sse_resilience"]
    sid = sse.open_stream("alice", app=app)
    broker = state.broker
    follower = broker.subscribe(sid)
    link = next(iter(broker._links.values()))
    eventually(lambda: link._pubsub is not None)
    # A message the listener cannot handle is logged, never fatal.
    real = broker.dispatch
    failing = threading.Event()

    def dispatch(message: dict[str, object]) -> None:
        if not failing.is_set():
            failing.set()
            raise RuntimeError("injected")
        real(message)

    broker.dispatch = dispatch  # type: ignore[method-assign]
    with sse.producer(sid, app=app) as out:
        out.send("token", 1)
        eventually(failing.is_set)
        out.send("token", 2)
        eventually(lambda: follower.timeline.events and
                   follower.timeline.events[-1].seq == 2)  # fmt: skip
    broker.unsubscribe(follower)


def test_deferred_writes_land_once_redis_is_back(
    redis_factory: Callable[[], RedisServer],
) -> None:
    server = redis_factory()
    client = quick_client(server)
    deferred = Deferred(client, interval=0.1)
    server.pause()
    try:
        started = time.monotonic()
        deferred.run(lambda pipe: pipe.set("k", "v"))
        assert deferred.pending == 1
        assert time.monotonic() - started < 5
    finally:
        server.resume()
    observer = server.client()
    # Both: the first attempt's SET, sent before the pause was noticed, may
    # land on resume before the deferred retry does (seen with redis-py 7).
    eventually(lambda: observer.get("k") == "v" and deferred.pending == 0)
    deferred.loop.stop(timeout=1)


def test_leases_and_counts_return_to_zero_after_an_outage(
    redis_factory: Callable[[], RedisServer],
) -> None:
    """Give-backs that met an outage land when it ends: nothing is left
    counted, without waiting for anything to expire."""
    server = redis_factory()
    client = quick_client(server)
    observer = server.client()
    leases = ConnectionLeases(client, KEYS, limit=100, interval=30)
    leases.deferred.loop.interval = leases.deferred.loop.max_retry = 0.1
    observer.hset(KEYS.stream("s"), "state", "active")
    held = []
    # Two leases: each release spends the client's whole retry budget (about
    # 2.5 s) on the paused server before it is deferred.
    for _ in range(2):
        lease = acquire(leases, "alice")
        assert lease is not None
        joined = run_pipeline(
            client, lambda pipe, lease=lease: leases.queue_join(pipe, lease, "s")
        )
        assert joined == [1]
        held.append(lease)
    assert observer.zcard(KEYS.stream_connections("s")) == 2
    server.pause()
    try:
        for lease in held:
            leases.release(lease)  # each meets the outage: deferred, no error
    finally:
        server.resume()
    eventually(lambda: observer.zcard(KEYS.stream_connections("s")) == 0)
    assert observer.zcard(KEYS.user_connections("alice")) == 0
    assert leases.held == 0
    leases.stop()
    leases.deferred.loop.stop()


@pytest.mark.parametrize("attr", ["_heartbeater", "_leases", "_stats"])
def test_background_parts_are_made_on_first_use_only(
    attr: str, make_app: AppFactory
) -> None:
    app, _ = make_app()
    state = app.extensions["sse_resilience"]
    assert getattr(state, attr) is None  # created on first use only


@KILLS_A_THREAD
def test_start_background_revives_loops(make_app: AppFactory, r: redis.Redis) -> None:
    app, sse = make_app()
    state = app.extensions["sse_resilience"]
    sid = sse.open_stream("alice", app=app)
    state.heartbeater.add(sid)
    loop = state.heartbeater.loop
    flaky = Flaky(loop.job, SystemExit())
    loop.job, flaky.times = flaky, 1
    eventually(lambda: not loop.alive)
    app.test_client().get("/sse/streams/x/recover")  # any request revives
    eventually(lambda: loop.alive)
    assert loop.restarts == 1
    state.heartbeater.discard(sid)
