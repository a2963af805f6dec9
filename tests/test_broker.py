from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from flask_sse_resilience.broker import RESYNC, Broker, Signal
from flask_sse_resilience.keys import Keys
from flask_sse_resilience.models import Event
from flask_sse_resilience.redisutil import make_client

from .redis_server import RedisServer

KEYS = Keys("sse:")


def wait_for(predicate: Callable[[], bool], seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def announce(server: RedisServer, sid: str, seq: int) -> None:
    server.client().publish(KEYS.channel(sid), f"{seq}-0\n{seq}\ntoken\n{seq}")


def pubsub_clients(server: RedisServer) -> int:
    return sum(1 for c in server.client().client_list() if c["sub"] != "0")


@pytest.fixture
def server(redis_factory: Callable[[], RedisServer]) -> RedisServer:
    return redis_factory()


def test_one_pubsub_connection_fans_out_to_every_follower(server: RedisServer) -> None:
    broker = Broker(make_client(server.url, max_connections=4), KEYS, queue_size=10)
    subs = [broker.subscribe(f"s{i}") for i in range(3)]
    try:
        for sub in subs:
            assert sub.get(timeout=5) is RESYNC  # subscription confirmed
        # Later followers join a live channel: their own log read covers them.
        subs += [broker.subscribe(f"s{i % 3}") for i in range(27)]
        time.sleep(0.2)
        for sub in subs:  # a racing duplicate SUBSCRIBE only repeats the RESYNC
            while sub.get(timeout=0) is RESYNC:
                pass
        assert pubsub_clients(server) == 1
        announce(server, "s1", 1)
        for sub in subs:
            item = sub.get(timeout=2 if sub.stream_id == "s1" else 0.05)
            if sub.stream_id == "s1":
                assert isinstance(item, Event) and item.seq == 1
            else:
                assert item is None
        for sub in subs:
            broker.unsubscribe(sub)
        assert broker.channels == 0
        wait_for(lambda: server.client().pubsub_numsub("sse:events:{s1}")[0][1] == 0)
    finally:
        broker.stop()


def test_followers_are_told_to_reconnect_when_redis_goes(server: RedisServer) -> None:
    broker = Broker(
        make_client(server.url, max_connections=4), KEYS, queue_size=10, poll=0.2
    )
    sub = broker.subscribe("s")
    try:
        assert sub.get(timeout=5) is RESYNC
        port = server.port
        server.kill()
        deadline = time.monotonic() + 10
        item = sub.get(timeout=1)
        while item is RESYNC or item is None:  # until the listener notices
            assert time.monotonic() < deadline
            item = sub.get(timeout=1)
        assert item is Signal.RECONNECT
        assert sub.get(timeout=0) is Signal.RECONNECT  # and it stays closed
        broker.unsubscribe(sub)
        server.port = port
        server.start()
        # The listener reconnects by itself; new followers are served at once.
        again = broker.subscribe("s")
        assert again.get(timeout=10) is RESYNC
        wait_for(lambda: server.client().pubsub_numsub("sse:events:{s}")[0][1] == 1)
        announce(server, "s", 7)
        item = again.get(timeout=2)
        while item is RESYNC:
            item = again.get(timeout=2)
        assert isinstance(item, Event) and item.seq == 7
        assert broker.connects >= 2
        broker.unsubscribe(again)
    finally:
        broker.stop()


def test_a_follower_that_falls_behind_is_told_to_resync(server: RedisServer) -> None:
    broker = Broker(make_client(server.url, max_connections=4), KEYS, queue_size=3)
    sub = broker.subscribe("s")
    try:
        assert sub.get(timeout=5) is RESYNC
        for seq in range(1, 11):
            announce(server, "s", seq)
        time.sleep(0.3)
        assert sub.get(timeout=1) is RESYNC  # queue dropped, not grown
        assert sub.get(timeout=0.1) is None
    finally:
        broker.unsubscribe(sub)
        broker.stop()
