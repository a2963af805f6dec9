from __future__ import annotations

import time

import pytest
import redis

from flask_sse_resilience import StreamIdTaken, StreamState
from flask_sse_resilience.redisio.commands import as_text
from flask_sse_resilience.store import scripts
from flask_sse_resilience.store.keys import Keys
from flask_sse_resilience.store.registry import StreamRegistry
from flask_sse_resilience.store.scripts import Scripts
from harness.redis_server import RedisServer
from harness.roundtrips import RoundTrips, counting_client

KEYS = Keys("sse:")


@pytest.fixture
def registry(r: redis.Redis, redis_server: RedisServer) -> StreamRegistry:
    return StreamRegistry(counting_client(redis_server.port), KEYS, stream_ttl=60)


def test_register_writes_the_seed_fields_with_ttl(
    registry: StreamRegistry, r: redis.Redis
) -> None:
    registry.register("warm-up", user_id="x", stream_type="t")  # loads the script
    with RoundTrips() as rt:
        registry.register("s1", user_id="alice", stream_type="chat", metadata={"a": 1})
    # The user's count, then the record and its index entry: two slots.
    assert rt.count == 2
    raw = r.hgetall(KEYS.stream("s1"))
    assert raw["streamId"] == "s1" and raw["userId"] == "alice"
    assert raw["streamType"] == "chat" and raw["state"] == "active"
    assert raw["metadata"] == '{"a": 1}'
    assert raw["startedAt"] == raw["lastHeartbeat"]
    assert 55 <= r.ttl(KEYS.stream("s1")) <= 60
    assert r.zscore(KEYS.active_of("s1"), "s1") == float(raw["lastHeartbeat"])
    record = registry.get("s1")
    assert record is not None and record.state is StreamState.ACTIVE
    assert record.metadata == {"a": 1} and record.seq == 0


def test_register_refuses_a_taken_id_and_leaves_it_alone(
    registry: StreamRegistry, r: redis.Redis
) -> None:
    registry.register("s1", user_id="alice", stream_type="chat")
    with pytest.raises(StreamIdTaken):
        registry.register("s1", user_id="mallory", stream_type="chat")
    assert r.hget(KEYS.stream("s1"), "userId") == "alice"


def test_heartbeat_is_one_round_trip_for_many_streams(
    registry: StreamRegistry, r: redis.Redis
) -> None:
    ids = [f"s{i}" for i in range(50)]
    for stream_id in ids:
        registry.register(stream_id, user_id="u", stream_type="t")
    for stream_id in ids:
        r.zadd(KEYS.active_of(stream_id), {stream_id: 1})
    registry.heartbeat(ids[:1])  # loads the script
    with RoundTrips() as rt:
        alive = registry.heartbeat(ids)
    assert rt.count == 1
    assert alive == [True] * 50
    assert all(r.zscore(KEYS.active_of(sid), sid) > 1 for sid in ids)  # type: ignore[operator]


def test_heartbeat_never_resurrects_an_expired_stream(
    registry: StreamRegistry, r: redis.Redis
) -> None:
    registry.register("gone", user_id="u", stream_type="t")
    r.delete(KEYS.stream("gone"))  # as if it expired
    assert registry.heartbeat(["gone"]) == [False]
    assert not r.exists(KEYS.stream("gone"))
    assert r.zscore(KEYS.active_of("gone"), "gone") is None


def test_a_heartbeat_that_drops_a_gone_record_tells_its_followers(
    registry: StreamRegistry, r: redis.Redis
) -> None:
    registry.register("gone", user_id="u", stream_type="t")
    listener = r.pubsub()
    listener.subscribe(KEYS.channel("gone"))
    assert listener.get_message(timeout=1)["type"] == "subscribe"  # type: ignore[index]
    r.delete(KEYS.stream("gone"))
    assert registry.heartbeat(["gone"]) == [False]
    notice = listener.get_message(timeout=1)
    # An end notice (no id) like the guardian's; each worker decides whether
    # the record expired or was lost (see test_presence.py).
    assert notice is not None and notice["data"] == '\n0\nfailed\n{"reason":"expired"}'
    assert registry.heartbeat(["gone"]) == [False]  # the entry is gone: once
    assert listener.get_message(timeout=0.2) is None
    listener.close()


def test_stale_ids_uses_the_redis_clock_and_one_pipeline(
    registry: StreamRegistry, r: redis.Redis
) -> None:
    for stream_id in ("fresh", "old1", "old2"):
        registry.register(stream_id, user_id="u", stream_type="t")
    now_ms = int(r.time()[0]) * 1000
    for stream_id in ("old1", "old2"):
        r.zadd(KEYS.active_of(stream_id), {stream_id: now_ms - 60_000})
    runner = Scripts(registry.redis)
    calls = [
        scripts.stale_ids(KEYS, shard, stale_ms=30_000, limit=100, grace_ms=30_000)
        for shard in range(KEYS.shards)
    ]
    runner.run_many(calls)  # loads the script
    with RoundTrips() as rt:
        replies = runner.run_many(calls)
    assert rt.count == 1
    assert all(int(reply[0]) == 0 for reply in replies)
    assert sorted(as_text(i) for reply in replies for i in reply[1]) == ["old1", "old2"]


def test_unregister(registry: StreamRegistry, r: redis.Redis) -> None:
    registry.register("s", user_id="u", stream_type="t")
    assert registry.unregister("s")
    assert not registry.unregister("s")
    assert registry.get("s") is None
    assert r.zscore(KEYS.active_of("s"), "s") is None


def test_timestamps_come_from_redis(registry: StreamRegistry, r: redis.Redis) -> None:
    registry.register("s", user_id="u", stream_type="t")
    seconds, micros = r.time()
    record = registry.get("s")
    assert record is not None
    assert abs(record.started_at.timestamp() - (seconds + micros / 1e6)) < 2
    assert abs(record.started_at.timestamp() - time.time()) < 5


def test_made_ids_never_look_like_an_option() -> None:
    """One token in 64 starts with ``-``; ``flask sse cancel <id>`` would
    take such an id for an option (seen in CI)."""
    from flask_sse_resilience.ids import is_valid_stream_id, new_stream_id

    made = [new_stream_id() for _ in range(5000)]
    assert all(is_valid_stream_id(i) and not i.startswith("-") for i in made)
    assert len(set(made)) == len(made)
