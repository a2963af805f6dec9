from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
import redis
from redis.exceptions import ResponseError

from flask_sse_resilience.redisio.commands import script
from flask_sse_resilience.redisio.connect import make_client
from flask_sse_resilience.redisio.failures import UNAVAILABLE
from flask_sse_resilience.redisio.sharedpipe import SharedPipeline
from harness.redis_server import RedisServer


def test_concurrent_callers_share_round_trips(redis_server: RedisServer) -> None:
    client = make_client(redis_server.url, max_connections=2)
    client.flushall()
    shared = SharedPipeline(client)
    results: dict[int, list[Any]] = {}
    start = threading.Barrier(40)

    def caller(i: int) -> None:
        def build(pipe: Any) -> None:
            pipe.set(f"k{i}", i)
            pipe.incrby("total", i)
            pipe.get(f"k{i}")

        start.wait()
        results[i] = shared.run(build)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Every caller got its own replies, in its own order.
    for i, replies in results.items():
        assert replies[0] is True and replies[2] == str(i)
    assert int(client.get("total") or 0) == sum(range(40))
    assert shared.calls == 40
    assert shared.turns < 40  # waiting callers rode along with a leader


def test_an_error_stays_with_its_caller(r: redis.Redis) -> None:
    client = make_client(
        f"redis://127.0.0.1:{r.connection_pool.connection_kwargs['port']}",
        max_connections=2,
    )
    shared = SharedPipeline(client)
    r.set("text", "not a number")
    with pytest.raises(ResponseError):
        shared.run(lambda pipe: pipe.incr("text"))
    assert shared.run(lambda pipe: pipe.incr("n")) == [1]


def test_scripts_are_loaded_after_a_restart(
    redis_factory: Callable[[], RedisServer],
) -> None:
    server = redis_factory()
    client = make_client(server.url, max_connections=2)
    counter = script(client, "return redis.call('INCR', KEYS[1])")
    shared = SharedPipeline(client)
    # Never loaded: the call meets NOSCRIPT, the shared loads and runs it once.
    assert shared.run(lambda pipe: counter.queue(pipe, ["c"])) == [1]
    client.script_flush()
    assert shared.run(lambda pipe: counter.queue(pipe, ["c"])) == [2]
    assert client.get("c") == "2"  # never run twice


def test_redis_down_reaches_every_caller(
    redis_factory: Callable[[], RedisServer],
) -> None:
    server = redis_factory()
    client = make_client(server.url, max_connections=2)
    shared = SharedPipeline(client)
    server.kill()
    with pytest.raises(UNAVAILABLE):
        shared.run(lambda pipe: pipe.get("x"))
    with pytest.raises(UNAVAILABLE):  # and the next caller is not left waiting
        shared.run(lambda pipe: pipe.get("x"))
