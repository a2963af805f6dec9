from __future__ import annotations

import pytest
import redis

from flask_sse_resilience import (
    ProducerConflictError,
    StreamNotActiveError,
    StreamState,
)
from flask_sse_resilience.errors import LogBehindError
from flask_sse_resilience.store.eventlog import EventLog
from flask_sse_resilience.store.keys import Keys
from flask_sse_resilience.store.registry import StreamRegistry

KEYS = Keys("sse:")


@pytest.fixture
def stores(r: redis.Redis) -> tuple[StreamRegistry, EventLog]:
    registry = StreamRegistry(r, KEYS, stream_ttl=600)
    log = EventLog(r, KEYS, max_events=100, completion_ttl=30)
    registry.register("s", user_id="alice", stream_type="t")
    return registry, log


def test_append_logs_publishes_and_follows_the_record_ttl(
    stores: tuple[StreamRegistry, EventLog], r: redis.Redis
) -> None:
    _, log = stores
    seq = log.claim("s", "tok").seq
    assert seq == 0
    pubsub = r.pubsub()
    pubsub.subscribe(KEYS.channel("s"))
    assert pubsub.get_message(timeout=1)["type"] == "subscribe"
    event_id = log.append("s", "tok", 1, "token", '{"x":1}')
    message = pubsub.get_message(timeout=1)
    assert message["data"] == f'{event_id}\n1\ntoken\n{{"x":1}}'
    (event,) = log.read("s", None)
    assert (event.id, event.seq, event.type, event.data) == (
        event_id,
        1,
        "token",
        {"x": 1},
    )
    assert abs(r.pttl(KEYS.log("s")) - r.pttl(KEYS.stream("s"))) < 1000
    assert r.hget(KEYS.stream("s"), "lastEventId") == event_id
    pubsub.close()


def test_a_retried_append_is_not_doubled(
    stores: tuple[StreamRegistry, EventLog], r: redis.Redis
) -> None:
    _, log = stores
    log.claim("s", "tok")
    first = log.append("s", "tok", 1, "token", "1")
    again = log.append("s", "tok", 1, "token", "1")  # as after a lost reply
    assert again == first
    assert r.xlen(KEYS.log("s")) == 1
    # Event 3 after event 1: the log is behind this producer (a failover
    # lost event 2), which it is told together with where the log ends.
    with pytest.raises(LogBehindError, match="ends at event 1") as behind:
        log.append("s", "tok", 3, "token", "3")
    assert behind.value.logged == 1
    assert isinstance(behind.value, ProducerConflictError)


def test_a_new_producer_takes_the_lease_over(
    stores: tuple[StreamRegistry, EventLog],
) -> None:
    _, log = stores
    log.claim("s", "old")
    log.append("s", "old", 1, "token", "1")
    assert log.claim("s", "new").seq == 1
    with pytest.raises(ProducerConflictError, match="taken over"):
        log.append("s", "old", 2, "token", "2")
    log.append("s", "new", 2, "token", "2")


def test_finish_is_one_atomic_terminal_write(
    stores: tuple[StreamRegistry, EventLog], r: redis.Redis
) -> None:
    registry, log = stores
    log.claim("s", "tok")
    log.append("s", "tok", 1, "token", '"a"')
    event_id = log.finish(
        "s", state=StreamState.COMPLETED, event_type="completed",
        data_json='{"text":"a"}', token="tok", seq=2,
    )  # fmt: skip
    record = registry.get("s")
    assert record is not None
    assert record.state is StreamState.COMPLETED and record.last_event_id == event_id
    assert r.zscore(KEYS.active_of("s"), "s") is None
    completion = r.hgetall(KEYS.completion("s"))
    assert completion["terminalEventType"] == "completed"
    assert completion["eventId"] == event_id and completion["userId"] == "alice"
    assert log.read("s", None)[-1].type == "completed"
    # Everything about the stream now lives exactly as long as its completion.
    ttls = [r.pttl(k) for k in (KEYS.stream("s"), KEYS.log("s"), KEYS.completion("s"))]
    assert all(28_000 < ttl <= 30_000 for ttl in ttls)
    assert max(ttls) - min(ttls) < 100
    # A retry of the same terminal write is acknowledged, not repeated.
    again = log.finish(
        "s", state=StreamState.COMPLETED, event_type="completed",
        data_json='{"text":"a"}', token="tok", seq=2,
    )  # fmt: skip
    assert again == event_id and r.xlen(KEYS.log("s")) == 2
    with pytest.raises(StreamNotActiveError):
        log.append("s", "tok", 3, "token", '"late"')


def test_guardian_finish_is_a_compare_and_set(
    stores: tuple[StreamRegistry, EventLog], r: redis.Redis
) -> None:
    registry, log = stores
    with pytest.raises(StreamNotActiveError):  # it heartbeated just now
        log.finish(
            "s", state=StreamState.ORPHANED, event_type="failed",
            data_json='{"reason":"orphaned"}', stale_ms=30_000,
        )  # fmt: skip
    r.hset(KEYS.stream("s"), "lastHeartbeat", 0)
    log.finish(
        "s", state=StreamState.ORPHANED, event_type="failed",
        data_json='{"reason":"orphaned"}', stale_ms=30_000,
    )  # fmt: skip
    record = registry.get("s")
    assert record is not None and record.state is StreamState.ORPHANED
    with pytest.raises(StreamNotActiveError):  # never twice
        log.finish(
            "s", state=StreamState.ORPHANED, event_type="failed",
            data_json="{}", stale_ms=0,
        )  # fmt: skip


def test_the_log_is_capped(r: redis.Redis) -> None:
    registry = StreamRegistry(r, KEYS, stream_ttl=600)
    log = EventLog(r, KEYS, max_events=100, completion_ttl=30)
    registry.register("big", user_id="u", stream_type="t")
    log.claim("big", "tok")
    for seq in range(1, 501):
        log.append("big", "tok", seq, "n", str(seq))
    assert r.xlen(KEYS.log("big")) < 300  # "~" trims whole macro nodes
    events = list(log.iter_after("big", None, page=64))
    assert events[-1].seq == 500
    assert [e.seq for e in events] == list(range(events[0].seq, 501))


def test_writes_to_a_missing_stream_are_refused(r: redis.Redis) -> None:
    log = EventLog(r, KEYS, max_events=100, completion_ttl=30)
    with pytest.raises(StreamNotActiveError, match="does not exist"):
        log.claim("nope", "tok")
    with pytest.raises(StreamNotActiveError):
        log.append("nope", "tok", 1, "t", "1")
    assert not r.exists(KEYS.log("nope"), KEYS.stream("nope"))
