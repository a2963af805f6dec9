"""The connection pool is fair under gevent: hundreds of producers sending
back to back through one process and the default pool (4 connections) all
finish, heartbeats keep up, the guardian orphans nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from queue import Empty

import pytest

from flask_sse_resilience.redisio.pool import FairQueue
from harness.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[1]


def test_waiters_are_served_first_come_first_served() -> None:
    queue = FairQueue(2)
    queue.put_nowait("a")
    assert queue.get(timeout=0.1) == "a"
    served: list[int] = []

    def wait(n: int) -> None:
        served.append((n, queue.get(timeout=5)))  # type: ignore[arg-type]

    waiters = []
    for n in range(3):
        waiters.append(threading.Thread(target=wait, args=(n,)))
        waiters[-1].start()
        time.sleep(0.05)  # they queue up in this order
    for item in ("x", "y", "z"):
        queue.put_nowait(item)
        # The giver asks again at once: it must not jump the line.
        with pytest.raises(Empty):
            queue.get(block=False)
    for waiter in waiters:
        waiter.join(5)
    assert sorted(served) == [(0, "x"), (1, "y"), (2, "z")]  # type: ignore[comparison-overlap]


def test_a_waiter_that_gave_up_is_skipped() -> None:
    queue = FairQueue(1)
    with pytest.raises(Empty):
        queue.get(timeout=0.05)
    queue.put_nowait("a")  # nobody waits any more: kept idle
    assert queue.qsize() == 1 and queue.get(block=False) == "a"


@pytest.mark.slow
def test_500_producers_back_to_back_in_one_gevent_process(
    redis_factory: type[RedisServer],
) -> None:
    server = redis_factory()
    probe = subprocess.run(
        [sys.executable, "-m", "tests.fairness_probe", server.url, "500", "40"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    result = json.loads(probe.stdout.strip().splitlines()[-1])
    print(result)
    assert result["errors"] == {}
    assert result["states"] == {"completed": 500}
    assert result["bare_pool_errors"] == 0
    # Heartbeats kept every stream fresh (stale threshold 3 s).
    assert result["worst_heartbeat_age"] < 3
