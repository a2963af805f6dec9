from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from flask_sse_resilience.models import Event
from flask_sse_resilience.redisio.connect import make_client
from flask_sse_resilience.serve.broker import Broker
from flask_sse_resilience.serve.timeline import Follower, Notice
from flask_sse_resilience.store.keys import Keys
from harness.redis_server import RedisServer
from harness.redis_topologies import ClusterFixture

KEYS = Keys("sse:")


def wait_for(predicate: Callable[[], bool], seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def announce(server: RedisServer, sid: str, seq: int) -> None:
    server.client().publish(KEYS.channel(sid), f"{seq}-0\n{seq}\ntoken\n{seq}")


def settled(follower: Follower, after: int, timeout: float) -> object:
    """What ``follower`` gets next, past any RESYNC (a racing duplicate
    SUBSCRIBE confirms twice)."""
    item = follower.wait(after, timeout=timeout)
    while item is Notice.RESYNC:
        item = follower.wait(after, timeout=timeout)
    return item


def pubsub_clients(server: RedisServer) -> int:
    return sum(1 for c in server.client().client_list() if c["sub"] != "0")


@pytest.fixture
def server(redis_factory: Callable[[], RedisServer]) -> RedisServer:
    return redis_factory()


def test_one_pubsub_connection_fans_out_to_every_follower(server: RedisServer) -> None:
    broker = Broker(make_client(server.url, max_connections=4), KEYS, buffer=10)
    subs = [broker.subscribe(f"s{i}") for i in range(3)]
    try:
        for sub in subs:
            assert sub.wait(0, timeout=5) is Notice.RESYNC  # subscription confirmed
        # Later followers join a live channel: their own log read covers them.
        subs += [broker.subscribe(f"s{i % 3}") for i in range(27)]
        time.sleep(0.2)
        for sub in subs:  # a racing duplicate SUBSCRIBE only repeats the RESYNC
            while sub.wait(0, timeout=0) is Notice.RESYNC:
                pass
        assert pubsub_clients(server) == 1
        announce(server, "s1", 1)
        for sub in subs:
            item = settled(sub, 0, timeout=2 if sub.stream_id == "s1" else 0.05)
            if sub.stream_id == "s1":
                assert isinstance(item, list) and [e.seq for e in item] == [1]
                assert item[0] is subs[1].wait(0, timeout=0)[0]  # type: ignore[index]
            else:
                assert item is None
        for sub in subs:
            broker.unsubscribe(sub)
        assert broker.channels == 0
        wait_for(lambda: server.client().pubsub_numsub(KEYS.channel("s1"))[0][1] == 0)
    finally:
        broker.stop()


def test_followers_are_told_to_reconnect_when_redis_goes(server: RedisServer) -> None:
    broker = Broker(
        make_client(server.url, max_connections=4), KEYS, buffer=10, poll=0.2
    )
    sub = broker.subscribe("s")
    try:
        assert sub.wait(0, timeout=5) is Notice.RESYNC
        port = server.port
        server.kill()
        deadline = time.monotonic() + 10
        item = sub.wait(0, timeout=1)
        while item is Notice.RESYNC or item is None:  # until the listener notices
            assert time.monotonic() < deadline
            item = sub.wait(0, timeout=1)
        assert item is Notice.RECONNECT
        assert sub.wait(0, timeout=0) is Notice.RECONNECT  # and it stays closed
        broker.unsubscribe(sub)
        server.port = port
        server.start()
        # The listener reconnects by itself; new followers are served at once.
        again = broker.subscribe("s")
        assert again.wait(0, timeout=10) is Notice.RESYNC
        wait_for(lambda: server.client().pubsub_numsub(KEYS.channel("s"))[0][1] == 1)
        announce(server, "s", 7)
        item = again.wait(6, timeout=2)
        while item is Notice.RESYNC:
            item = again.wait(6, timeout=2)
        assert again.wait(0, timeout=0) is Notice.BEHIND  # 1-6 are not in memory
        assert isinstance(item, list) and [e.seq for e in item] == [7]
        assert broker.connects >= 2
        broker.unsubscribe(again)
    finally:
        broker.stop()


def test_followers_share_one_bounded_timeline(server: RedisServer) -> None:
    broker = Broker(make_client(server.url, max_connections=4), KEYS, buffer=3)
    slow, fast = broker.subscribe("s"), broker.subscribe("s")
    try:
        assert slow.wait(0, timeout=5) is Notice.RESYNC
        fast.wait(0, timeout=0)  # RESYNC too, unless it joined after the confirmation
        for seq in range(1, 11):
            announce(server, "s", seq)
        wait_for(lambda: isinstance(settled(fast, 9, timeout=0), list))
        assert broker.buffered("s") == 3  # bounded: 8, 9, 10
        assert (
            settled(slow, 0, timeout=1) is Notice.BEHIND
        )  # so it reads the log instead
        assert [e.seq for e in settled(fast, 7, timeout=0)] == [8, 9, 10]  # type: ignore[attr-defined]
        assert settled(fast, 10, timeout=0.1) is None  # nothing newer
        # Once every follower has passed an event, the worker lets it go.
        slow.seq = fast.seq = 10
        for seq in range(11, 75):
            announce(server, "s", seq)
        wait_for(lambda: isinstance(settled(fast, 73, timeout=0), list))
        slow.seq = fast.seq = 74
        announce(server, "s", 75)  # 64 events later: trimmed to what is unsent
        wait_for(lambda: broker.buffered("s") <= 1)
        # A gap in the announcements (a missed one) starts the timeline over.
        announce(server, "s", 78)
        wait_for(lambda: settled(fast, 75, timeout=0) is Notice.BEHIND)
        announce(server, "s", 78)  # duplicates are ignored
        time.sleep(0.1)
        assert [e.seq for e in settled(fast, 77, timeout=0)] == [78]  # type: ignore[attr-defined]
    finally:
        broker.unsubscribe(slow)
        broker.unsubscribe(fast)
        broker.stop()


def test_a_vanished_stream_ends_its_followers(server: RedisServer) -> None:
    broker = Broker(make_client(server.url, max_connections=4), KEYS, buffer=10)
    sub = broker.subscribe("s")
    try:
        assert sub.wait(0, timeout=5) is Notice.RESYNC
        server.client().publish(KEYS.channel("s"), "\n0\nfailed\n{}")
        item = settled(sub, 0, timeout=2)
        assert isinstance(item, Event) and item.id is None and item.type == "failed"
        sub.close(Notice.DISCONNECTED)
        assert sub.wait(0, timeout=0) is Notice.DISCONNECTED
    finally:
        broker.unsubscribe(sub)
        broker.stop()


def test_on_a_cluster_streams_follow_sharded_channels(cluster: ClusterFixture) -> None:
    client = make_client(cluster.url, max_connections=4)
    broker = Broker(client, KEYS, buffer=10)
    # Streams in different shards, hence (mostly) on different nodes.
    ids = [f"s{i}" for i in range(12)]
    followers = [broker.subscribe(sid) for sid in ids]
    try:
        for follower in followers:
            assert follower.wait(0, timeout=5) is Notice.RESYNC  # SSUBSCRIBE confirmed
        publisher = cluster.client()
        for sid in ids:
            publisher.execute_command(
                "SPUBLISH", KEYS.channel(sid), f"1-0\n1\ntoken\n{sid!r}"
            )
        for sid, follower in zip(ids, followers, strict=True):
            item = settled(follower, 0, timeout=5)
            assert isinstance(item, list) and item[0].data_json == repr(sid)
        nodes = {client.get_node_from_key(KEYS.channel(sid)).name for sid in ids}
        assert len(broker._links) == len(nodes) > 1  # one connection per node
        publisher.close()
    finally:
        for follower in followers:
            broker.unsubscribe(follower)
        broker.stop()


def test_an_announced_batch_reaches_a_follower_as_one_handout(
    server: RedisServer,
) -> None:
    broker = Broker(make_client(server.url, max_connections=4), KEYS, buffer=10)
    sub = broker.subscribe("s")
    try:
        assert sub.wait(0, timeout=5) is Notice.RESYNC
        batch = "\n".join(f"{n}-0\n{n}\ntoken\n{n}" for n in range(1, 4))
        server.client().publish(KEYS.channel("s"), batch)
        item = settled(sub, 0, timeout=5)
        assert isinstance(item, list)
        assert [(e.id, e.seq, e.data) for e in item] == [
            ("1-0", 1, 1),
            ("2-0", 2, 2),
            ("3-0", 3, 3),
        ]
        # A malformed announcement makes followers catch up from the log.
        server.client().publish(KEYS.channel("s"), "4-0\n4\ntoken")
        assert sub.wait(3, timeout=5) is Notice.RESYNC
    finally:
        broker.unsubscribe(sub)
        broker.stop()
