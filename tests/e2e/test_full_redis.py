"""The demo under gunicorn (one gevent worker, guardian every second,
dashboard on) while its ``noeviction`` Redis is full for a few seconds, with
generations running and new ones asked for: what its log holds, what clients
get, and that it serves again once memory is freed, without a restart.

Before OOM was handled (issue 26), ten seconds of this logged 5,036 lines
with 98 tracebacks and every ``POST /generations`` answered 500.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import pytest

from harness.demo_server import DemoFactory
from harness.follower import Follower
from harness.redis_server import RedisServer

from ..test_memory import fill, free
from .test_lifecycle import wait_for

pytestmark = pytest.mark.e2e

FULL = 4.0


def test_the_demo_while_redis_is_full(
    demo_factory: DemoFactory, redis_factory: Callable[[], RedisServer]
) -> None:
    server = redis_factory()
    server.client().config_set("maxmemory-policy", "noeviction")
    demo = demo_factory(server.url, workers=1)
    client = demo.client("alice")
    followers = []
    for _ in range(5):
        started = client.post("/generations", json={"tokens": 400, "interval_ms": 50})
        followers.append(
            Follower([demo.base], started.json()["streamUrl"], client.cookies)
        )
    wait_for(lambda: all(len(f.tokens()) >= 5 for f in followers), 20, "tokens")
    before = len(demo.output().splitlines())

    fill(server)
    answers: Counter[tuple[int, str, str | None]] = Counter()
    deadline = time.monotonic() + FULL
    while time.monotonic() < deadline:
        answer = client.post("/generations", json={"tokens": 5})
        key = (
            answer.status_code,
            answer.json()["error"],
            answer.headers.get("Retry-After"),
        )
        answers[key] += 1
        time.sleep(0.2)
    during = demo.output().splitlines()[before:]
    assert set(answers) == {(503, "redis_out_of_memory", "10")}, answers
    # One line (the episode's start) from the worker; the generations that
    # failed log at INFO, which the demo does not show.
    assert len(during) == 1, during
    assert "is out of memory (" in during[0] and "policy noeviction" in during[0]

    free(server)
    # The start line mentions "takes writes again" too: wait for the end line.
    wait_for(lambda: "takes writes again after" in demo.output(), 15, "the end line")
    fresh = client.post("/generations", json={"tokens": 3, "interval_ms": 0})
    assert fresh.status_code == 201
    done = Follower([demo.base], fresh.json()["streamUrl"], client.cookies).join(30)
    assert done[-1]["type"] == "completed"
    for follower in followers:
        events = follower.join(60)
        tokens = follower.tokens()
        assert tokens == list(range(len(tokens))), "a gap or a double"
        ends = [e for e in events if e["type"] in ("completed", "failed", "cancelled")]
        assert len(ends) == 1 and ends[0]["type"] == "failed", ends
    log = demo.output().splitlines()[before:]
    assert not [line for line in log if "Traceback" in line], log
    ours = [line for line in log if line.startswith("Redis at ")]
    assert len(ours) == 2, ours
    # The rest: the guardian's line per stream it orphaned.
    assert len(log) <= 2 + len(followers), log
    print(f"full Redis for {FULL:.0f} s: {len(during)} line(s) while full, "
          f"{len(log)} in all, {sum(answers.values())} POSTs answered 503")  # fmt: skip
