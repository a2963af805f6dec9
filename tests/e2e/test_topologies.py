"""End to end beyond one Redis: a real Redis Cluster (three masters, one
replica each) and Sentinel (one master, one replica, three sentinels), and
several app hosts (separate gunicorn masters) sharing them.

The core end-to-end scenarios of ``test_demo`` and ``test_lifecycle`` run here
unchanged on each topology; then each topology's failover.
"""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest
import redis

from flask_sse_resilience.redisio.connect import make_client
from flask_sse_resilience.store.eventlog import EventLog
from flask_sse_resilience.store.keys import Keys
from harness.demo_server import Demo, DemoFactory
from harness.follower import Follower
from harness.redis_topologies import ClusterFixture, SentinelFixture

from . import test_demo as demo_tests
from .test_lifecycle import generate, orphaned_on_another_host, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.topology]

KEYS = Keys("sse:")


def _flush_cluster(cluster: ClusterFixture) -> None:
    cluster.wait_healthy()
    client = cluster.client()
    try:
        client.flushall(target_nodes=redis.RedisCluster.PRIMARIES)
    finally:
        client.close()


@pytest.fixture(params=["cluster", "sentinel"])
def topology(
    request: pytest.FixtureRequest,
) -> str:
    """The Redis URL of each topology in turn, emptied before the test."""
    if request.param == "cluster":
        fixture: ClusterFixture = request.getfixturevalue("cluster")
        _flush_cluster(fixture)
        return fixture.url
    sentinels: SentinelFixture = request.getfixturevalue("sentinel")
    master = redis.Redis(port=sentinels.current_master())
    master.flushall()
    master.close()
    return sentinels.url


def test_a_generation_streams_to_completion(
    topology: str, demo_factory: DemoFactory
) -> None:
    demo_tests.test_a_generation_streams_to_completion(demo_factory(topology))


def test_resume_on_the_other_worker_loses_and_doubles_nothing(
    topology: str, demo_factory: DemoFactory
) -> None:
    demo = demo_factory(topology)
    demo_tests.test_resume_on_the_other_worker_loses_and_doubles_nothing(demo)


def test_reconnect_after_completion_gets_the_result_at_once(
    topology: str, demo_factory: DemoFactory
) -> None:
    demo = demo_factory(topology)
    demo_tests.test_reconnect_after_completion_gets_the_result_at_once(demo)


def test_a_killed_producer_is_orphaned_for_a_client_on_another_host(
    topology: str, demo_factory: DemoFactory
) -> None:
    orphaned_on_another_host(demo_factory(topology), demo_factory(topology), bound=8)


def test_three_hosts_a_dead_producer_host_and_its_restart(
    topology: str, demo_factory: DemoFactory
) -> None:
    """Producer on host A, clients on B and C; A dies whole (master and
    workers, SIGKILL): the guardian on B or C orphans the stream, both clients
    get the same events once; A restarted on the same port takes over nothing
    and ends nothing twice."""
    host_a, host_b, host_c = (demo_factory(topology) for _ in range(3))
    url, _, client = generate(host_a, tokens=1000, interval_ms=50)
    on_b = Follower([host_b.base], url, client.cookies)
    on_c = Follower([host_c.base], url, client.cookies)
    wait_for(lambda: min(len(on_b.tokens()), len(on_c.tokens())) >= 5, 15, "tokens")
    for pid in host_a.workers():
        os.kill(pid, signal.SIGKILL)
    os.kill(host_a.proc.pid, signal.SIGKILL)
    host_a.proc.wait(5)
    events_b, events_c = on_b.join(20), on_c.join(20)
    assert events_b[-1] == {"type": "failed", "data": {"reason": "orphaned"}}
    assert events_b == events_c  # the same events, once each, on both hosts
    assert on_b.tokens() == list(range(len(on_b.tokens())))
    restarted = Demo(topology, 2, {}, port=host_a.port)
    try:
        time.sleep(3)  # a few guardian intervals on the restarted host too
        with httpx.Client(base_url=restarted.base, cookies=client.cookies) as again:
            events, _ = demo_tests.follow(again, url)
        kinds = [demo_tests.envelope(e)["type"] for e in events]
        assert kinds == ["connected", "failed"]  # ended once, not resumed
    finally:
        restarted.stop()
    # The log holds each event once, and one terminal event.
    store = make_client(topology, max_connections=2)
    logged = EventLog.parse_entries(
        store.xrange(KEYS.log(url.rsplit("/", 1)[1]), "-", "+")
    )
    assert [e.seq for e in logged] == list(range(1, len(logged) + 1))
    assert [e.type for e in logged].count("failed") == 1
    assert len(logged) == len(events_b)


def test_cluster_failover_loses_nothing_completed(
    cluster: ClusterFixture, demo_factory: DemoFactory
) -> None:
    """Kill the master serving a live stream's slot: its replica takes over.

    The guarantee, as tested: a stream that completed before the failover
    keeps its result (every completion written here was acknowledged by the
    replica with WAIT first); a live stream resumes on the new master and its
    client receives every event the new master holds, in order, each once,
    ending in exactly one terminal event. Events the old master acknowledged
    but had not replicated when it died are lost: the producer sees its next
    write refused out of order and the stream ends failed, never silently
    skipping.
    """
    _flush_cluster(cluster)
    demo = demo_factory(cluster.url)
    client = demo.client("alice")
    done_url = demo_tests.start_generation(client, tokens=5, interval_ms=0)
    done, _ = demo_tests.follow(client, done_url)
    assert demo_tests.envelope(done[-1])["type"] == "completed"
    stream_id = done_url.rsplit("/", 1)[1]
    live_url = demo_tests.start_generation(client, tokens=400, interval_ms=25)
    live_id = live_url.rsplit("/", 1)[1]
    checker = cluster.client()
    # Make sure the completed result reached the replica before the kill.
    checker.execute_command(
        "WAIT", 1, 2000, target_nodes=checker.get_node_from_key(KEYS.stream(stream_id))
    )
    follower = Follower([demo.base], live_url, client.cookies)
    wait_for(lambda: len(follower.tokens()) >= 20, 20, "live tokens")
    victim = cluster.master_of(KEYS.stream(live_id))
    victim.kill()
    killed = time.monotonic()
    events = follower.join(60)
    tokens = follower.tokens()
    print(
        f"cluster failover: live stream ended {events[-1]['type']} "
        f"{time.monotonic() - killed:.1f}s after the kill, {len(tokens)} tokens, "
        f"{follower.connections} connections, {follower.resets} resets"
    )
    assert tokens == list(range(len(tokens))), "a gap or a double"
    assert events[-1]["type"] in ("completed", "failed")
    assert sum(e["type"] in ("completed", "failed") for e in events) == 1
    cluster.wait_healthy()
    recovered = client.get(done_url + "/recover").json()
    assert recovered["status"] == "completed"
    assert recovered["terminalEventData"] == demo_tests.envelope(done[-1])["data"]
    checker.close()
    victim.start()  # it rejoins as a replica of the new master
    cluster.wait_healthy()


def test_sentinel_failover_clients_reconnect_and_resume(
    sentinel: SentinelFixture, demo_factory: DemoFactory
) -> None:
    """Kill the master: the sentinels promote the replica, the app follows
    them, clients reconnect and resume in order with nothing doubled."""
    master = redis.Redis(port=sentinel.current_master())
    master.flushall()
    master.close()
    demo = demo_factory(sentinel.url)
    url, _, client = generate(demo, tokens=300, interval_ms=30)
    follower = Follower([demo.base], url, client.cookies)
    wait_for(lambda: len(follower.tokens()) >= 20, 20, "tokens")
    old = sentinel.current_master()
    victim = next(s for s in (sentinel.master, sentinel.replica) if s.port == old)
    victim.kill()
    wait_for(lambda: sentinel.current_master() != old, 30, "no promotion")
    events = follower.join(90)
    tokens = follower.tokens()
    assert tokens == list(range(len(tokens))), "a gap or a double"
    assert sum(e["type"] in ("completed", "failed") for e in events) == 1
    print(
        f"sentinel failover: {len(tokens)} tokens, ended {events[-1]['type']}, "
        f"{follower.connections} connections, {follower.resets} resets"
    )
    victim.start()  # the sentinels make it a replica of the new master


def test_a_producers_end_waits_for_a_replica_on_its_own_connection(
    sentinel: SentinelFixture,
) -> None:
    """Behind Sentinel, a producer's terminal write is acknowledged only once
    a replica has it (``WAIT 1`` in the write's own pipeline): with the
    replica not acknowledging, ``complete`` waits out the timeout instead of
    returning while the end is on the master alone (a ``WAIT`` on another
    pooled connection counts none of this write and returns at once)."""
    from flask import Flask

    from flask_sse_resilience import SSEResilience
    from flask_sse_resilience.redisio.commands import REPLICA_WAIT_MS
    from harness.topology_faults import SentinelFaults

    SentinelFaults(sentinel).heal()  # both servers up, the replica in sync
    port = sentinel.current_master()
    replica = next(s for s in (sentinel.master, sentinel.replica) if s.port != port)
    app = Flask("sentinel_wait")
    app.config.update(
        SECRET_KEY="test",
        SSE_RESILIENCE_REDIS_URL=sentinel.url,
        SSE_RESILIENCE_COALESCE_MS=0,
        SSE_RESILIENCE_GUARDIAN_ENABLED=False,
    )
    sse = SSEResilience(app, identity=lambda: "alice")
    try:
        sid = sse.open_stream("alice", app=app)
        with sse.producer(sid, app=app) as out:
            out.send("token", 1)
            assert replica.proc is not None
            os.kill(replica.proc.pid, signal.SIGSTOP)  # it acknowledges nothing
            try:
                started = time.monotonic()
                out.complete("done")
                waited = time.monotonic() - started
            finally:
                os.kill(replica.proc.pid, signal.SIGCONT)
        assert waited >= REPLICA_WAIT_MS / 1000 * 0.9, waited
        master = redis.Redis(port=port, decode_responses=True)
        assert master.wait(1, 3000) == 1  # awake again: it has the end
        assert master.hget(KEYS.stream(sid), "state") == "completed"
    finally:
        app.extensions["sse_resilience"].close()
