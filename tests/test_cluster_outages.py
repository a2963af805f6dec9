"""Cluster conditions, provoked for real on the session's Redis Cluster, and a
producer riding each out with every event once and in order:

- ``CLUSTERDOWN``: a master that does *not* own the stream's slot is killed;
  until its replica is promoted every node refuses every command;
- ``TRYAGAIN``, ``ASK`` and ``MOVED``: the stream's slot is resharded to
  another master while the producer writes (some of its keys moved, then all,
  then the slot handed over).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
import redis
from flask import Flask
from redis.backoff import NoBackoff
from redis.retry import Retry

from flask_sse_resilience import SSEResilience
from flask_sse_resilience.redisio.failures import UNAVAILABLE
from flask_sse_resilience.store.keys import Keys
from harness.redis_server import RedisServer
from harness.redis_topologies import ClusterFixture

from .test_outages import Generation

pytestmark = pytest.mark.topology

KEYS = Keys("sse:")


def bare(node: RedisServer) -> redis.Redis:
    """A plain client of one node: no retries, no redirections followed."""
    return redis.Redis(
        port=node.port,
        socket_timeout=0.5,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )


def error_of(call: Callable[[], object]) -> BaseException | None:
    try:
        call()
    except redis.RedisError as exc:
        return exc
    return None


@pytest.fixture
def app_sse(cluster: ClusterFixture) -> Iterator[tuple[Flask, SSEResilience]]:
    cluster.wait_healthy()
    client = cluster.client()
    client.flushall(target_nodes=redis.RedisCluster.PRIMARIES)
    client.close()
    app = Flask(__name__)
    app.config.update(
        SSE_RESILIENCE_REDIS_URL=cluster.url,
        SSE_RESILIENCE_HEARTBEAT_INTERVAL=1,
        SSE_RESILIENCE_STALE_THRESHOLD=3,
        SSE_RESILIENCE_GUARDIAN_INTERVAL=1,
    )
    sse = SSEResilience(app)
    sse.guardian(app).start()  # it must orphan nothing meanwhile
    yield app, sse
    app.extensions["sse_resilience"].close()


def masters(cluster: ClusterFixture) -> list[RedisServer]:
    return [
        n for n in cluster.nodes
        if n.proc is not None and bare(n).info("replication")["role"] == "master"
    ]  # fmt: skip


def test_a_dead_master_elsewhere_never_breaks_a_stream(
    cluster: ClusterFixture, app_sse: tuple[Flask, SSEResilience]
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    owner = cluster.master_of(KEYS.stream(sid))
    victim = next(m for m in masters(cluster) if m is not owner)
    generation = Generation(sse, app, sid, 300)
    while generation.sent < 20:
        time.sleep(0.01)
    victim.kill()
    probe = bare(owner)
    seen: BaseException | None = None
    deadline = time.monotonic() + 15
    while seen is None and time.monotonic() < deadline:
        error = error_of(lambda: probe.hget(KEYS.stream(sid), "state"))
        if isinstance(error, redis.exceptions.ClusterDownError):
            seen = error
        time.sleep(0.02)
    assert seen is not None, "CLUSTERDOWN never seen"
    assert isinstance(seen, UNAVAILABLE)
    generation.check()
    victim.start()  # rejoins as a replica of its promoted replica
    cluster.wait_healthy()


def test_resharding_the_stream_slot_mid_generation(
    cluster: ClusterFixture, app_sse: tuple[Flask, SSEResilience]
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    record, log = KEYS.stream(sid), KEYS.log(sid)
    source = cluster.master_of(record)
    target = next(m for m in masters(cluster) if m is not source)
    src, dst = bare(source), bare(target)
    slot = int(src.execute_command("CLUSTER", "KEYSLOT", record))
    src_id = src.execute_command("CLUSTER", "MYID")
    dst_id = dst.execute_command("CLUSTER", "MYID")
    generation = Generation(sse, app, sid, 200)
    while generation.sent < 20:
        time.sleep(0.01)
    dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
    src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)

    def migrate(*keys: str) -> None:
        src.execute_command(
            "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys
        )

    migrate(record)  # the record moved, the log not yet: TRYAGAIN
    tryagain = error_of(lambda: src.eval("return 1", 2, record, log))
    assert isinstance(tryagain, redis.exceptions.TryAgainError)
    time.sleep(1)  # the producer's writes meet TRYAGAIN meanwhile
    ask = error_of(lambda: src.hget(record, "state"))
    assert isinstance(ask, redis.exceptions.AskError)
    while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
        migrate(*keys)
    for node in masters(cluster):
        bare(node).execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
    moved = error_of(lambda: src.hget(record, "state"))
    assert isinstance(moved, redis.exceptions.MovedError)
    for error in (tryagain, ask, moved):
        assert isinstance(error, UNAVAILABLE)
    generation.check()
    assert cluster.master_of(record).port == target.port


def test_a_dead_node_fails_only_its_own_calls(
    cluster: ClusterFixture, app_sse: tuple[Flask, SSEResilience]
) -> None:
    """Heartbeats (one pipeline per node) still land on healthy masters while
    another master is dead, and the guardian sweeps the shards it reaches."""
    app, sse = app_sse
    sse.guardian(app).stop()
    state = app.extensions["sse_resilience"]
    by_master: dict[int, str] = {}
    while len(by_master) < 3:
        sid = sse.open_stream("alice", app=app)
        by_master.setdefault(cluster.master_of(KEYS.stream(sid)).port, sid)
    checker = cluster.client()
    before = {sid: int(checker.hget(KEYS.stream(sid), "lastHeartbeat"))
              for sid in by_master.values()}  # fmt: skip
    # The client's default node if it is one of them: redis-py's cluster
    # pipeline used to ask it for every script's keys, so its death failed
    # every script pipeline, on every node.
    default = state.redis.get_default_node().port
    victim_port = default if default in by_master else next(iter(by_master))
    lost = by_master[victim_port]
    victim = next(n for n in cluster.nodes if n.port == victim_port)
    time.sleep(0.05)
    victim.kill()
    with pytest.raises(UNAVAILABLE):
        state.registry.heartbeat(list(by_master.values()))
    for port, sid in by_master.items():
        if port != victim_port:  # landed although the batch had a dead node
            assert int(checker.hget(KEYS.stream(sid), "lastHeartbeat")) > before[sid]
    result = sse.guardian(app).run_once(force=True)
    assert result.swept  # the reachable shards were swept
    assert lost not in result.orphaned
    checker.close()
    cluster.wait_healthy()
    victim.start()
    cluster.wait_healthy()
