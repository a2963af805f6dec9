"""A Redis that runs out of memory, on real servers with a small
``maxmemory``.

``noeviction`` (the policy the docs ask for): while Redis is full, opening a
stream answers 503 ``redis_out_of_memory`` with ``Retry-After``,
``open_stream`` raises :class:`RedisOutOfMemory`, a producer's send fails at
once naming the cause, and the log holds one line when writes are first
refused and one when they are taken again, however many background loops
(guardian, heartbeats, counters, leases) meet it meanwhile; followers keep
what they had, in order, and end once; and once memory is freed a new
stream runs end to end without a restart. An evicting policy is warned about
once, when the app starts its background work.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from flask import Flask, jsonify

from flask_sse_resilience import RedisUnavailable, SSEResilience, StreamState, metrics
from flask_sse_resilience.errors import RedisOutOfMemory
from flask_sse_resilience.redisio import memory as memories
from flask_sse_resilience.state import get_state
from flask_sse_resilience.web import dashboard as dashboards
from harness.redis_server import RedisServer
from harness.redis_topologies import ClusterFixture

from .conftest import AppFactory
from .sse import envelope, parse
from .streams import login, open_stream
from .test_metrics import value

FILLER = 3000

#: The loggers of the outage log and of the start-up eviction check.
OUTAGES = "flask_sse_resilience.redisio.outages"
HEALTH = "flask_sse_resilience.redisio.health"


def fill(server: RedisServer) -> None:
    """Make Redis full: 3 MB of filler, then ``maxmemory`` set 0.5 MB below
    what it uses (``noeviction`` evicts nothing; every write is refused)."""
    admin = server.client()
    pipe = admin.pipeline(transaction=False)
    for i in range(FILLER):
        pipe.set(f"filler:{i}", "x" * 1000)
    pipe.execute()
    time.sleep(0.2)  # the pipeline's query buffer is freed
    used = int(admin.info("memory")["used_memory"])
    admin.config_set("maxmemory", str(used - 500_000))


def free(server: RedisServer) -> None:
    """Free memory as an operator would: delete the filler (``maxmemory`` stays)."""
    server.client().delete(*(f"filler:{i}" for i in range(FILLER)))


def wait_for(check: Callable[[], bool], what: str, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class Following:
    """A follower of a stream read in a thread, as a browser would."""

    def __init__(self, app: Flask, sid: str) -> None:
        self.client = app.test_client()
        login(self.client, "alice")
        self.response = open_stream(self.client, f"/sse/streams/{sid}")
        assert self.response.status_code == 200
        self.events: list[dict[str, Any]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for event in parse(self.response.response):
            if event.event == "heartbeat":
                continue
            self.events.append(envelope(event))
            if self.events[-1]["type"] in ("completed", "failed", "cancelled"):
                break
        self.response.close()

    def tokens(self) -> list[Any]:
        return [e["data"] for e in self.events if e["type"] == "token"]

    def ends(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] in ("completed", "failed")]


@pytest.fixture
def full_app(
    redis_factory: Callable[[], RedisServer], make_app: AppFactory
) -> Iterator[tuple[Flask, SSEResilience, RedisServer]]:
    """An app on a private ``noeviction`` Redis with everything that writes
    in the background on: the guardian, the dashboard's counters, metrics;
    and a view of the app's own that opens streams (``POST /open``)."""
    server = redis_factory()
    server.client().config_set("maxmemory-policy", "noeviction")
    app, sse = make_app(
        {
            "SSE_RESILIENCE_REDIS_URL": server.url,
            "SSE_RESILIENCE_DASHBOARD": True,
            "SSE_RESILIENCE_METRICS": True,
        }
    )

    @app.post("/open")
    def open_one() -> Any:
        return jsonify(streamId=sse.open_stream("alice")), 201

    yield app, sse, server


def test_a_full_redis_is_a_503_a_quick_failure_and_two_log_lines(
    full_app: tuple[Flask, SSEResilience, RedisServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, sse, server = full_app
    state = get_state(app)
    client = app.test_client()
    login(client, "alice")
    refused_before = value("sse_resilience_redis_oom_total")
    sid = client.post("/open").json["streamId"]
    follower = Following(app, sid)
    out = sse.producer(sid, app=app, retry_for=30)
    out.__enter__()
    for i in range(5):
        out.send("token", i)
    # A second stream whose producer lives through it all: its heartbeats
    # (every 0.3 s) meet the full Redis too.
    quiet = sse.open_stream("alice", app=app)
    idle = sse.producer(quiet, app=app)
    idle.__enter__()
    wait_for(lambda: len(follower.tokens()) == 5, "the tokens before")
    seen = len(caplog.records)

    fill(server)
    full_at = time.monotonic()
    answer = client.post("/open")
    assert answer.status_code == 503
    assert answer.json == {
        "error": "redis_out_of_memory",
        "message": "The stream store is full; retry later.",
    }
    assert answer.headers["Retry-After"] == "10"
    with pytest.raises(RedisOutOfMemory) as opened:
        sse.open_stream("alice", app=app)
    assert isinstance(opened.value, RedisUnavailable)  # old handlers still catch it
    started = time.monotonic()
    with pytest.raises(redis.exceptions.OutOfMemoryError) as sent:
        out.send("token", 5)
    took = time.monotonic() - started
    assert took < 0.5, took  # not retried for retry_for (30 s)
    assert "maxmemory" in str(sent.value)
    assert (
        out.__exit__(type(sent.value), sent.value, None) is False
    )  # left to the guardian
    # The dashboard still reads (reads are not refused) and says it is full.
    shown = dashboards.snapshot(state)["redis"]
    assert shown["full"] and shown["max"] < shown["used"]
    assert shown["policies"] == ["noeviction"]
    time.sleep(max(0.0, 4 - (time.monotonic() - full_at)))  # ~4 s full

    during = [r for r in caplog.records[seen:] if r.levelno >= logging.WARNING]
    assert [r.name for r in during] == ["flask_sse_resilience.redisio.outages"], during
    line = during[0].getMessage()
    assert line.startswith(
        f"Redis at {server.url} (SSE_RESILIENCE_REDIS_URL) is out of memory ("
    )
    assert "maxmemory" in line and "policy noeviction" in line
    assert "free memory or raise maxmemory" in line
    assert "503 redis_out_of_memory" in line
    assert state.outages.full and state.outages.full_count == 1
    # Every loop met it: the guardian (ticking every 0.14 s), two streams'
    # heartbeats, the counters, the follower's lease: each a refusal, no line.
    assert state.outages.refused > 10
    assert value("sse_resilience_redis_oom_total") - refused_before > 10
    assert len(follower.ends()) == 0

    free(server)
    wait_for(lambda: not state.outages.full, "the end of the episode", 10)
    follower.thread.join(15)
    after = [r for r in caplog.records[seen:] if r.levelno >= logging.WARNING]
    ours = [r.getMessage() for r in after if r.name == OUTAGES]
    assert len(ours) == 2
    assert ours[1].startswith(f"Redis at {server.url} (SSE_RESILIENCE_REDIS_URL) "
                              "takes writes again after ")  # fmt: skip
    # Besides those two: one line per stream the guardian orphaned, at most.
    assert len(after) <= 4, [r.getMessage() for r in after]
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"

    # The follower kept every token, in order, and ended exactly once.
    assert follower.tokens() == [0, 1, 2, 3, 4]
    assert len(follower.ends()) == 1
    assert follower.ends()[0]["type"] == "failed"

    # No restart: a new stream runs end to end.
    again = client.post("/open")
    assert again.status_code == 201
    fresh = again.json["streamId"]
    watcher = Following(app, fresh)
    with sse.producer(fresh, app=app) as writer:
        writer.send("token", "a")
        writer.complete("done")
    watcher.thread.join(10)
    assert watcher.tokens() == ["a"]
    assert [e["type"] for e in watcher.ends()] == ["completed"]
    # The producer that lived through it without writing kept its stream:
    # the guardian, whose own writes were refused too, orphaned nothing live.
    idle.__exit__(None, None, None)
    assert sse.get_stream(quiet, app=app).state is StreamState.COMPLETED
    # The refusals reach the dashboard's counters once Redis takes writes.
    state.stats.flush()
    assert dashboards.snapshot(state)["counts"]["oom"] > 10


def test_a_redis_hovering_at_its_limit_is_one_episode(
    make_app: AppFactory,
    redis_factory: Callable[[], RedisServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Full, then taking writes for a moment, then full again (as when
    expiring keys free a little memory under load): one episode, one line
    each way, the end only once writes have been taken for a while."""
    server = redis_factory()
    admin = server.client()
    app, sse = make_app(
        {"SSE_RESILIENCE_REDIS_URL": server.url}, guardian_enabled=False
    )
    state = get_state(app)
    fill(server)
    limit = int(admin.config_get("maxmemory")["maxmemory"])
    for _ in range(3):
        with pytest.raises(RedisOutOfMemory):
            sse.open_stream("alice", app=app)
        admin.config_set("maxmemory", str(limit + 2_000_000))  # room, briefly
        sse.open_stream("alice", app=app)
        time.sleep(1)
        admin.config_set("maxmemory", str(limit))
    assert state.outages.full and state.outages.full_count == 1
    free(server)
    wait_for(lambda: not state.outages.full, "the end of the episode", 10)
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 2, lines
    assert "is out of memory" in lines[0] and "takes writes again" in lines[1]


def test_memory_is_read_per_master(
    redis_server: RedisServer, cluster: ClusterFixture
) -> None:
    [single] = memories.read(redis_server.client())
    assert single.node == "master" and single.used > 0 and not single.full
    client = cluster.client()
    try:
        nodes = memories.read(client)
    finally:
        client.close()
    assert len(nodes) == 3
    assert all(n.used > 0 and n.maxmemory == 0 and not n.full for n in nodes)
    assert memories.describe(nodes).count("maxmemory none") == 3


def test_the_memory_gauges(make_app: AppFactory, redis_server: RedisServer) -> None:
    make_app({"SSE_RESILIENCE_METRICS": True})
    labels = f'{{node="master",redis="{redis_server.url}"}}'
    assert value("sse_resilience_redis_memory_used_bytes", labels) > 0
    assert value("sse_resilience_redis_memory_max_bytes", labels) == 0
    assert metrics.scrape().count(b"sse_resilience_redis_memory_used_bytes{") == 1


def start_background(app: Flask) -> None:
    """The app's first request, and its eviction check done."""
    client = app.test_client()
    client.get("/sse/streams/nope/recover")
    for thread in threading.enumerate():
        if thread.name == "sse-resilience-eviction-check":
            thread.join(10)


@pytest.mark.parametrize(
    ("maxmemory", "policy", "warned"),
    [
        ("100mb", "allkeys-lru", True),
        ("100mb", "volatile-ttl", True),
        ("100mb", "noeviction", False),
        ("0", "allkeys-lru", False),  # nothing is evicted without a limit
    ],
)
def test_an_evicting_policy_is_warned_once_at_start(
    make_app: AppFactory,
    redis_factory: Callable[[], RedisServer],
    caplog: pytest.LogCaptureFixture,
    maxmemory: str,
    policy: str,
    warned: bool,
) -> None:
    server = redis_factory()
    admin = server.client()
    admin.config_set("maxmemory", maxmemory)
    admin.config_set("maxmemory-policy", policy)
    app, _ = make_app({"SSE_RESILIENCE_REDIS_URL": server.url})
    start_background(app)
    start_background(app)  # once per process, not per request
    lines = [
        r.getMessage()
        for r in caplog.records
        if r.name == HEALTH and r.levelno >= logging.WARNING
    ]
    if not warned:
        assert lines == []
        return
    assert lines == [
        f"Redis at {server.url} (SSE_RESILIENCE_REDIS_URL): maxmemory-policy "
        f"{policy} can evict live streams when memory is full, and their "
        "followers then end failed (lost) mid-stream (each stream's keys carry "
        "a TTL, so volatile-* policies can too); set maxmemory-policy "
        "noeviction: a full Redis then refuses writes (answered 503 "
        "redis_out_of_memory) and loses nothing"
    ]


def test_no_warning_where_info_is_refused(
    make_app: AppFactory,
    redis_factory: Callable[[], RedisServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A managed Redis that denies ``INFO`` (here by an ACL): a debug line,
    nothing else, and the app runs as usual."""
    server = redis_factory()
    admin = server.client()
    admin.config_set("maxmemory", "100mb")
    admin.config_set("maxmemory-policy", "allkeys-lru")
    admin.acl_setuser(
        "app", enabled=True, passwords=["+pw"], keys=["*"], channels=["*"],
        commands=["+@all", "-info"],
    )  # fmt: skip
    url = f"redis://app:pw@127.0.0.1:{server.port}/0"
    caplog.set_level(logging.DEBUG, logger="flask_sse_resilience.redisio.health")
    app, sse = make_app({"SSE_RESILIENCE_REDIS_URL": url})
    start_background(app)
    mine = [r for r in caplog.records if r.name == HEALTH]
    assert [r.levelno for r in mine] == [logging.DEBUG]
    assert "INFO refused" in mine[0].getMessage()
    with sse.producer(sse.open_stream("alice", app=app), app=app) as out:
        out.complete("fine")
