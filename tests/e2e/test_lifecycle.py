"""End to end: the guardian, disconnects, graceful restarts and Redis outages,
under real gunicorn with gevent workers and a real redis-server."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from flask import Flask

from flask_sse_resilience import SSEResilience
from flask_sse_resilience.store.keys import Keys
from harness.demo_server import Demo, DemoFactory
from harness.follower import Follower
from harness.redis_server import RedisServer

KEYS = Keys("sse:")

pytestmark = pytest.mark.e2e


def wait_for(predicate: Callable[[], bool], seconds: float, what: str) -> float:
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < seconds, f"{what} after {seconds}s"
        time.sleep(0.02)
    return time.monotonic() - started


def generate(demo: Demo, user: str = "alice", **params: Any) -> tuple[str, int, Any]:
    client = demo.client(user)
    response = client.post("/generations", json=params)
    assert response.status_code == 201, response.text
    return response.json()["streamUrl"], int(response.headers["X-Demo-Worker"]), client


def test_three_workers_sweep_once_per_interval(
    demo_factory: DemoFactory, redis_server: RedisServer, r: redis.Redis
) -> None:
    # --preload: the app is imported in the master, which must never sweep.
    demo = demo_factory(
        workers=3,
        extra_args=("--preload",),
        FLASK_SSE_RESILIENCE_GUARDIAN_INTERVAL="0.5",
    )
    wait_for(lambda: int(r.get(KEYS.guardian_sweeps) or 0) > 0, 5, "no sweep")
    before = int(r.get(KEYS.guardian_sweeps))
    sweepers = set()
    for _ in range(25):  # ten intervals
        time.sleep(0.2)
        sweepers.add(int(r.hget(KEYS.guardian_last, "worker").split(":")[1]))
    sweeps = int(r.get(KEYS.guardian_sweeps)) - before
    assert 8 <= sweeps <= 12, f"{sweeps} sweeps in 10 intervals (3 workers)"
    assert sweepers <= set(demo.workers()) and demo.proc.pid not in sweepers
    # The leader dies: another worker takes over within one lock TTL (1.25 s).
    (leader,) = sweepers
    os.kill(leader, signal.SIGKILL)
    killed_at = int(r.get(KEYS.guardian_sweeps))
    wait_for(
        lambda: r.hget(KEYS.guardian_last, "worker").split(":")[1] != str(leader),
        1.25 + 0.5 + 0.5,
        "no takeover",
    )
    assert int(r.get(KEYS.guardian_sweeps)) > killed_at


def orphaned_on_another_host(host_a: Demo, host_b: Demo, bound: float) -> None:
    """A producer on ``host_a`` is killed (``kill -9``) while a client follows
    on ``host_b``: the client gets ``orphaned`` within ``bound`` seconds, after
    every token once and in order, and recover agrees."""
    url, producer_pid, client = generate(host_a, tokens=1000, interval_ms=50)
    follower = Follower([host_b.base], url, client.cookies)
    wait_for(lambda: len(follower.tokens()) >= 5, 15, "no tokens")
    os.kill(producer_pid, signal.SIGKILL)
    killed = time.monotonic()
    events = follower.join(bound + 12)
    delay = time.monotonic() - killed
    assert events[-1] == {"type": "failed", "data": {"reason": "orphaned"}}
    assert delay < bound, f"orphaned after {delay:.1f}s"
    print(f"orphan detected {delay:.2f}s after kill -9")
    tokens = follower.tokens()
    assert tokens == list(range(len(tokens)))
    assert client.get(url + "/recover").json()["status"] == "orphaned"


def test_a_killed_producer_is_orphaned_for_a_client_on_another_host(
    demo_factory: DemoFactory, r: redis.Redis
) -> None:
    orphaned_on_another_host(demo_factory(), demo_factory(), bound=6)


def test_a_closed_client_is_released_within_a_second(
    demo_factory: DemoFactory, r: redis.Redis
) -> None:
    # Heartbeat 10 s: a keep-alive write would notice only much later.
    demo = demo_factory(
        workers=1,
        FLASK_SSE_RESILIENCE_HEARTBEAT_INTERVAL="10",
        FLASK_SSE_RESILIENCE_STALE_THRESHOLD="30",
    )
    url, _, client = generate(demo, tokens=1, interval_ms=60_000)
    sid = url.rsplit("/", 1)[1]
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    sock = socket.create_connection(("127.0.0.1", demo.port))
    sock.sendall(f"GET {url} HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n".encode())
    key = KEYS.stream_connections(sid)
    wait_for(lambda: r.zcard(key) == 1, 5, "never connected")
    sock.close()
    released = wait_for(lambda: r.zcard(key) == 0, 1.0, "not released")
    print(f"closed client released after {released * 1000:.0f} ms")


@pytest.mark.parametrize("how", ["HUP", "TERM"])
def test_graceful_restart_loses_and_doubles_nothing(
    demo_factory: DemoFactory, r: redis.Redis, how: str
) -> None:
    host_a = demo_factory()
    host_b = demo_factory() if how == "TERM" else host_a
    url, _, client = generate(host_a, tokens=40, interval_ms=100)
    follower = Follower([host_a.base, host_b.base], url, client.cookies)
    wait_for(lambda: len(follower.tokens()) >= 5, 10, "no tokens")
    signalled = time.monotonic()
    host_a.proc.send_signal(signal.SIGHUP if how == "HUP" else signal.SIGTERM)
    wait_for(lambda: bool(follower.ended_at), 5, "the response never ended")
    assert follower.ended_at[0] - signalled < 2.0
    events = follower.join(30)
    assert follower.tokens() == list(range(40))
    assert events[-1]["type"] == "completed"
    assert follower.connections >= 2
    assert follower.retries and follower.retries[0] <= 1000


def test_redis_restart_with_data_kept_loses_nothing(
    demo_factory: DemoFactory, redis_factory: type[RedisServer]
) -> None:
    server = redis_factory()
    demo = demo_factory(redis_url=server.url)
    app = Flask("producer")
    app.config.update(
        SSE_RESILIENCE_REDIS_URL=server.url,
        SSE_RESILIENCE_HEARTBEAT_INTERVAL=1,
        SSE_RESILIENCE_STALE_THRESHOLD=3,
        SSE_RESILIENCE_GUARDIAN_ENABLED=False,
    )
    sse = SSEResilience(app)
    sid = sse.open_stream("alice")
    client = demo.client("alice")
    follower = Follower([demo.base], f"/sse/streams/{sid}", client.cookies)

    port = server.port
    with sse.producer(sid, retry_for=20) as out:
        for i in range(30):
            out.send("token", {"index": i})
            time.sleep(0.05)
            if i == 10:
                server.client().save()
                server.kill()
                time.sleep(1.0)
                server.port = port
                server.start()
    events = follower.join(30)
    assert follower.tokens() == list(range(30))
    assert events[-1]["type"] == "completed"
    # New streams work at once.
    url, _, fresh = generate(demo, tokens=3, interval_ms=0)
    done = Follower([demo.base], url, fresh.cookies).join(10)
    assert done[-1]["type"] == "completed"
    app.extensions["sse_resilience"].close()
    assert "Traceback" not in demo.output()  # nothing escaped to the worker


def test_redis_data_loss_ends_followers_instead_of_hanging(
    demo_factory: DemoFactory, redis_factory: type[RedisServer]
) -> None:
    server = redis_factory()
    demo = demo_factory(redis_url=server.url)
    url, _, client = generate(demo, tokens=1000, interval_ms=100)
    follower = Follower([demo.base], url, client.cookies)
    wait_for(lambda: len(follower.tokens()) >= 3, 10, "no tokens")
    port = server.port
    server.kill()
    time.sleep(0.5)
    server.port = port
    server.start()  # empty: the stream is gone
    events = follower.join(15)
    # Either told on the open connection, or answered 404 on reconnecting.
    assert follower.gone or events[-1]["data"]["reason"] in ("lost", "error")
    # Resuming with an old Last-Event-ID is a clean 404, not a hang.
    again = client.get(url, headers={"Last-Event-ID": follower.last_id})
    assert again.status_code == 404
    url, _, fresh = generate(demo, tokens=3, interval_ms=0)
    assert Follower([demo.base], url, fresh.cookies).join(10)[-1]["type"] == "completed"


def test_a_deleted_record_ends_a_real_client_within_the_bound(
    demo: Demo, r: redis.Redis
) -> None:
    """A producer writing every 1.5 s (the demo's heartbeat is 1 s), its
    record deleted: the client (httpx-sse, over real HTTP, two gevent
    workers) gets ``failed``/``lost`` on the open response within one
    heartbeat interval plus the check's round trips, no reconnect needed."""
    url, _, client = generate(demo, tokens=100, interval_ms=1500)
    sid = url.rstrip("/").rsplit("/", 1)[-1]
    follower = Follower([demo.base], url, client.cookies)
    wait_for(lambda: len(follower.tokens()) >= 1, 10, "no token")
    r.delete(KEYS.stream(sid))
    gone = time.monotonic()
    events = follower.join(10)
    elapsed = time.monotonic() - gone
    assert events[-1] == {"type": "failed", "data": {"reason": "lost"}}
    assert follower.connections == 1 and not follower.gone
    bound = float(demo.env["HEARTBEAT_INTERVAL"]) + 0.1
    assert elapsed < bound + 1.0, f"ended {elapsed:.2f}s after the delete"
    assert client.get(url + "/recover").status_code == 404
