"""Chaos in the suite: short seeded runs on a Redis Cluster, Sentinel and a
standalone Redis, and thirty failovers of the master serving a live stream.
Set ``CHAOS_SEED`` to replay a run; ``make chaos`` runs the long version.
"""

from __future__ import annotations

import os
import random

import pytest
import redis

from harness.chaos import HOST_ENV, failover_series, run
from harness.demo_server import Demo, DemoFactory
from harness.redis_server import RedisServer
from harness.redis_topologies import ClusterFixture, SentinelFixture
from harness.topology_faults import ClusterFaults, SentinelFaults, StandaloneFaults

pytestmark = [pytest.mark.e2e, pytest.mark.topology, pytest.mark.slow]


def seed() -> int:
    return int(os.environ.get("CHAOS_SEED") or random.randrange(1_000_000))


def hosts(demo_factory: DemoFactory, url: str) -> list[Demo]:
    """Two app hosts (one gevent worker each) sharing ``url``."""
    return [demo_factory(url, workers=1, **HOST_ENV) for _ in range(2)]


def emptied(cluster: ClusterFixture) -> ClusterFixture:
    cluster.wait_healthy()
    client = cluster.client()
    client.flushall(target_nodes=redis.RedisCluster.PRIMARIES)
    client.close()
    return cluster


@pytest.mark.timeout(600)
def test_chaos_on_a_cluster(cluster: ClusterFixture, demo_factory: DemoFactory) -> None:
    emptied(cluster)
    outcome = run(ClusterFaults(cluster), hosts(demo_factory, cluster.url),
                  seconds=30, seed=seed())  # fmt: skip
    assert outcome.clean, outcome.summary()


@pytest.mark.timeout(600)
def test_chaos_on_sentinel(
    sentinel: SentinelFixture, demo_factory: DemoFactory
) -> None:
    master = redis.Redis(port=sentinel.current_master())
    master.flushall()
    master.close()
    outcome = run(SentinelFaults(sentinel), hosts(demo_factory, sentinel.url),
                  seconds=30, seed=seed())  # fmt: skip
    assert outcome.clean, outcome.summary()


@pytest.mark.timeout(600)
def test_chaos_on_a_standalone_redis_restarted_with_its_data(
    demo_factory: DemoFactory,
) -> None:
    server = RedisServer(None, "--dbfilename", "dump.rdb").start()
    try:
        outcome = run(StandaloneFaults(server), hosts(demo_factory, server.url),
                      seconds=20, seed=seed())  # fmt: skip
    finally:
        server.cleanup()
    assert outcome.clean, outcome.summary()


@pytest.mark.timeout(900)
def test_thirty_failovers_of_a_live_streams_master(
    cluster: ClusterFixture, demo_factory: DemoFactory
) -> None:
    """Heartbeat 1 s, stale 3 s, guardian 1 s, two hosts: the master serving
    a live stream's slot dies 30 times; no false orphan, every token once."""
    emptied(cluster)
    outcome, gaps = failover_series(
        ClusterFaults(cluster), hosts(demo_factory, cluster.url),
        cycles=30, seed=seed(),
    )  # fmt: skip
    gaps.sort()
    print(f"next token after a failover: median {gaps[len(gaps) // 2]:.2f}s, "
          f"max {gaps[-1]:.2f}s")  # fmt: skip
    assert outcome.faults["master killed"] == 30
    assert outcome.clean, outcome.summary()
