"""Cancellation: the request is durable, reaches the producer by every path,
and the stream ends with exactly one terminal event, ``cancelled``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from flask import Flask

from flask_sse_resilience import (
    SSEResilience,
    StreamCancelled,
    StreamNotActiveError,
    StreamState,
)
from flask_sse_resilience.store.keys import Keys

from .conftest import AppFactory

KEYS = Keys("sse:")


def eventually(check: Callable[[], object], seconds: float = 5.0) -> float:
    """Wait until ``check()`` is true; return how long it took."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < seconds, f"not within {seconds}s"
        time.sleep(0.005)
    return time.monotonic() - start


@pytest.fixture
def app_sse(make_app: AppFactory) -> tuple[Flask, SSEResilience]:
    # heartbeat 0.3 s, stale after 1 s; a fence 1.5 s after a cancel
    return make_app(
        {"SSE_RESILIENCE_CANCEL_GRACE": 1.5, "SSE_RESILIENCE_GUARDIAN_INTERVAL": 0.1}
    )


def unlinked(sse: SSEResilience, app: Flask, sid: str) -> Any:
    """A producer without the pub/sub fast path (a process that follows
    nothing): only its heartbeat, its writes and its claim can tell it."""
    producer = sse.producer(sid, app=app)
    producer._subscribe_cancels = None
    return producer


def terminal_events(sse: SSEResilience, app: Flask, sid: str) -> list[str]:
    return [e.type for e in sse.event_log(app).read(sid, None) if e.terminal]


def test_cancel_reaches_a_producer_over_pubsub_and_ends_it_cancelled(
    app_sse: tuple[Flask, SSEResilience],
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    with sse.producer(sid, app=app) as out:
        out.send("token", "a")
        assert not out.cancelled
        assert sse.cancel(sid, "enough", app=app) is StreamState.ACTIVE
        eventually(lambda: out.cancelled, 1.0)
        with pytest.raises(StreamCancelled) as caught:
            out.send("token", "b")
        assert (caught.value.reason, caught.value.by) == ("enough", "app")
        out.cancel({"text": "a"})
    completion = sse.get_completion(sid, app=app)
    assert completion.terminal_event_type == "cancelled"
    assert completion.terminal_event_data == {
        "reason": "enough",
        "by": "app",
        "partial": {"text": "a"},
    }
    assert sse.get_stream(sid, app=app).state is StreamState.CANCELLED
    assert [e.type for e in sse.event_log(app).read(sid, None)] == [
        "token",
        "cancelled",
    ]
    # A second request changes nothing and says so.
    assert sse.cancel(sid, app=app) is StreamState.CANCELLED


def test_stream_cancelled_leaving_the_block_ends_it_and_goes_no_further(
    app_sse: tuple[Flask, SSEResilience],
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    with sse.producer(sid, app=app) as out:
        sse.cancel(sid, app=app)
        for _ in range(1000):  # sends until one is refused
            out.send("token", "x")
        raise AssertionError("send never raised StreamCancelled")
    assert terminal_events(sse, app, sid) == ["cancelled"]
    assert sse.get_completion(sid, app=app).terminal_event_data == {
        "reason": None,
        "by": "app",
    }


def test_the_write_refuses_even_before_the_process_heard(
    app_sse: tuple[Flask, SSEResilience],
) -> None:
    """A producer whose fast path is lost still stops at its next write."""
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    with unlinked(sse, app, sid) as out:
        heartbeater = app.extensions["sse_resilience"].heartbeater
        heartbeater.discard(sid, out._flag.learn)  # nor does its heartbeat tell it
        sse.cancel(sid, "stop", app=app)
        with pytest.raises(StreamCancelled) as refused:
            out.send("token", 1)
        assert out.cancelled and refused.value.reason == "stop"
    assert terminal_events(sse, app, sid) == ["cancelled"]


def test_without_the_fast_path_the_heartbeat_brings_the_request(
    app_sse: tuple[Flask, SSEResilience],
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    with unlinked(sse, app, sid) as out:
        sse.cancel(sid, app=app)
        took = eventually(lambda: out.cancelled, 2.0)
        assert took <= 0.3 + 0.5  # one heartbeat interval (0.3 s), plus slack
    assert terminal_events(sse, app, sid) == ["cancelled"]


def test_a_cancel_before_the_producer_starts_is_seen_on_entering(
    app_sse: tuple[Flask, SSEResilience],
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    assert sse.cancel(sid, "changed my mind", app=app) is StreamState.ACTIVE
    with unlinked(sse, app, sid) as out:  # the claim alone tells it
        assert out.cancelled
        with pytest.raises(StreamCancelled):
            out.send("token", 1)
    data = sse.get_completion(sid, app=app).terminal_event_data
    assert data == {"reason": "changed my mind", "by": "app"}


def test_complete_after_a_cancel_request_is_refused(
    app_sse: tuple[Flask, SSEResilience],
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    with sse.producer(sid, app=app) as out:
        sse.cancel(sid, app=app)
        out._flag.request = False
        with pytest.raises(StreamCancelled):
            out.complete({"text": "all of it"})
    assert terminal_events(sse, app, sid) == ["cancelled"]


def test_an_ignored_cancel_is_fenced_after_the_grace(
    app_sse: tuple[Flask, SSEResilience],
) -> None:
    app, sse = app_sse
    sse.start_background(app)  # the guardian, every 0.1 s
    sid = sse.open_stream("alice", app=app)
    with sse.producer(sid, app=app) as out:
        out.send("token", 1)
        asked = time.monotonic()
        sse.cancel(sid, app=app)
        # The producer is stuck in a long call: it keeps heartbeating but
        # never looks. The guardian ends the stream after the grace (1.5 s).
        eventually(
            lambda: sse.get_stream(sid, app=app).state is StreamState.CANCELLED, 5
        )
        assert time.monotonic() - asked >= 1.5
        out._flag.request = False
        with pytest.raises(StreamCancelled):
            out.send("token", 2)
        assert out.cancel({"late": True}) == ""  # already ended: a no-op
    assert [e.type for e in sse.event_log(app).read(sid, None)] == [
        "token",
        "cancelled",
    ]


def test_cancelling_a_stream_whose_producer_is_dead_ends_it_at_once(
    app_sse: tuple[Flask, SSEResilience], r: redis.Redis
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    r.hset(KEYS.stream(sid), "lastHeartbeat", 1)  # silent for ages
    assert sse.cancel(sid, app=app) is StreamState.CANCELLED
    assert terminal_events(sse, app, sid) == ["cancelled"]
    with pytest.raises(StreamCancelled), sse.producer(sid, app=app):
        pass


def test_ended_and_unknown_streams(app_sse: tuple[Flask, SSEResilience]) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    with sse.producer(sid, app=app) as out:
        out.complete("done")
    assert sse.cancel(sid, app=app) is StreamState.COMPLETED
    assert terminal_events(sse, app, sid) == ["completed"]
    assert sse.cancel("no-such-stream", app=app) is None
    assert sse.cancel("bad id!", app=app) is None
    with pytest.raises(ValueError, match="200"):
        sse.cancel(sid, "x" * 201, app=app)


RACES = 150


@pytest.mark.parametrize("other", ["complete", "fail", "guardian"])
def test_cancel_racing_another_end_writes_one_terminal_event(
    app_sse: tuple[Flask, SSEResilience], r: redis.Redis, other: str
) -> None:
    """Hundreds of trials: whoever wins, the stream ends once, and its
    completion, record and log agree."""
    app, sse = app_sse
    outcomes: dict[str, int] = {}
    for _ in range(RACES):
        sid = sse.open_stream("alice", app=app)
        producer = sse.producer(sid, app=app)
        out = producer.__enter__()
        out.send("token", 1)
        if other == "guardian":
            r.hset(KEYS.stream(sid), "lastHeartbeat", 1)
        go = threading.Barrier(2)

        def end(go: threading.Barrier = go, out: Any = out) -> None:
            go.wait()
            try:
                if other == "complete":
                    out.complete("done")
                elif other == "fail":
                    out.fail("boom")
                else:
                    sse.guardian(app).run_once(force=True)
            except StreamNotActiveError:
                pass

        racer = threading.Thread(target=end)
        racer.start()
        go.wait()
        sse.cancel(sid, app=app)
        racer.join()
        producer.__exit__(None, None, None)
        ends = terminal_events(sse, app, sid)
        assert len(ends) == 1, ends
        completion = sse.get_completion(sid, app=app)
        record = sse.get_stream(sid, app=app)
        state = "orphaned" if ends[0] == "failed" and other == "guardian" else ends[0]
        assert record.state.value == state
        assert completion.terminal_event_type == ends[0]
        outcomes[state] = outcomes.get(state, 0) + 1
    assert sum(outcomes.values()) == RACES


def test_a_cancelled_stream_that_expired_leaves_the_guardians_sets(
    app_sse: tuple[Flask, SSEResilience], r: redis.Redis
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", cancel_when_abandoned=60, app=app)
    assert sse.cancel(sid, app=app) is StreamState.ACTIVE
    shard = KEYS.shard(sid)
    assert r.zscore(KEYS.cancelling(shard), sid) is not None
    r.delete(KEYS.stream(sid))  # as if its TTL ran out
    r.zadd(KEYS.cancelling(shard), {sid: 0})  # and its grace long past
    result = sse.guardian(app).run_once(force=True)
    assert result.pruned == 1
    for key in (KEYS.cancelling(shard), KEYS.abandon(shard), KEYS.active(shard)):
        assert r.zscore(key, sid) is None, key
    assert sse.guardian(app).run_once(force=True).pruned == 0
