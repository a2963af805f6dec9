"""The first request after a failover, on a worker that saw none of it.

An app whose pooled connections lead to a master that was just killed must
answer its next request from the promoted replica, not 503: the client's
retry policy (see :mod:`~flask_sse_resilience.redisio.connect`) spaces its attempts
so that a topology refresh, made again before each one, finds the new master
even when the first node asked still names the dead one. Each test kills the
master of a completed stream, waits for the earliest moment the replica
serves (a cluster replica that says it is master; sentinels that agree on
the new one), then sends every idle app's first request at once.

Before the policy was changed (retries within about 0.15 s, one topology
refresh per second) a quarter to a half of these first requests on a
cluster answered 503 ``redis_unavailable``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
import redis
from flask import Flask

from flask_sse_resilience import SSEResilience
from flask_sse_resilience.store.keys import Keys
from harness.redis_server import RedisServer
from harness.redis_topologies import ClusterFixture, SentinelFixture
from harness.topology_faults import ClusterFaults, SentinelFaults

pytestmark = pytest.mark.topology

KEYS = Keys("sse:")

#: Apps that see no traffic during the failover, each with its own pools.
IDLE = 6


@pytest.fixture
def apps() -> Iterator[Callable[[str], list[tuple[Flask, SSEResilience]]]]:
    made: list[Flask] = []

    def build(url: str) -> list[tuple[Flask, SSEResilience]]:
        built = []
        for _ in range(IDLE + 1):
            app = Flask(f"failover_{len(made)}")
            app.config.update(
                SECRET_KEY="test",
                SSE_RESILIENCE_REDIS_URL=url,
                SSE_RESILIENCE_COALESCE_MS=0,
                # Nothing in the background: the pools stay as they were.
                SSE_RESILIENCE_GUARDIAN_ENABLED=False,
            )
            built.append((app, SSEResilience(app, identity=lambda: "alice")))
            made.append(app)
        return built

    yield build
    for app in made:
        app.extensions["sse_resilience"].close()


def completed_stream(app: Flask, sse: SSEResilience) -> str:
    sid = sse.open_stream("alice", app=app)
    with sse.producer(sid, app=app) as out:
        out.send("token", 1)
        out.complete("done")
    return sid


def recover_all(idle: list[tuple[Flask, SSEResilience]], sid: str) -> list[int]:
    """Every app's ``GET .../recover`` at once; their status codes."""
    codes = [0] * len(idle)

    def one(i: int) -> None:
        reply = idle[i][0].test_client().get(f"/sse/streams/{sid}/recover")
        ok = reply.status_code == 200 and reply.get_json()["status"] == "completed"
        codes[i] = 200 if ok else reply.status_code

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(idle))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return codes


def role(port: int) -> tuple[str, int | None]:
    client = redis.Redis(port=port, socket_timeout=1, decode_responses=True)
    try:
        info = client.info("replication")
    finally:
        client.close()
    return str(info["role"]), info.get("master_port")


def until(check: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def test_first_reads_after_a_cluster_failover_succeed(
    cluster: ClusterFixture,
    apps: Callable[[str], list[tuple[Flask, SSEResilience]]],
) -> None:
    faults = ClusterFaults(cluster)
    faults.heal()
    writer, *idle = apps(cluster.url)
    for _cycle in range(2):
        sid = completed_stream(*writer)
        assert recover_all(idle, sid) == [200] * IDLE  # every pool knows the master
        victim = cluster.master_of(KEYS.stream(sid))
        replica: RedisServer = next(
            n for n in cluster.nodes
            if n.proc is not None and role(n.port) == ("slave", victim.port)
        )  # fmt: skip
        victim.kill()
        until(lambda r=replica: role(r.port)[0] == "master", "the promotion")
        assert recover_all(idle, sid) == [200] * IDLE
        faults.heal()


def test_first_reads_after_a_sentinel_failover_succeed(
    sentinel: SentinelFixture,
    apps: Callable[[str], list[tuple[Flask, SSEResilience]]],
) -> None:
    faults = SentinelFaults(sentinel)
    faults.heal()
    writer, *idle = apps(sentinel.url)
    for _cycle in range(2):
        sid = completed_stream(*writer)
        assert recover_all(idle, sid) == [200] * IDLE
        old = sentinel.current_master()
        victim = next(s for s in (sentinel.master, sentinel.replica) if s.port == old)
        victim.kill()
        until(lambda o=old: sentinel.current_master() != o, "the promotion")
        assert recover_all(idle, sid) == [200] * IDLE
        faults.heal()
