"""Token coalescing: sends held for a window are written as one batch, and
every send is still its own event, with its own id, for every reader."""

from __future__ import annotations

import time

import pytest
import redis
from flask import Flask

from flask_sse_resilience import (
    ProducerConflictError,
    SSEResilience,
    StreamCancelled,
    StreamNotActiveError,
    StreamState,
)
from flask_sse_resilience.store.keys import Keys

from .conftest import AppFactory
from .streams import data, login, open_stream, read, types

KEYS = Keys("sse:")


@pytest.fixture
def app_sse(make_app: AppFactory) -> tuple[Flask, SSEResilience]:
    """Fixed windows (no leading edge): every send is held, so a test can
    look at the window's mechanics; the leading edge has tests of its own."""
    return make_app({"SSE_RESILIENCE_COALESCE_LEADING": False})


def announcements(r: redis.Redis, sid: str) -> redis.client.PubSub:
    pubsub = r.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(KEYS.channel(sid))
    assert pubsub.get_message(timeout=1) is None  # the confirmation
    return pubsub


def drain(pubsub: redis.client.PubSub) -> list[str]:
    messages = []
    while (message := pubsub.get_message(timeout=0.3)) is not None:
        messages.append(message["data"])
    return messages


def test_sends_of_one_window_are_one_batch_of_separate_events(
    app_sse: tuple[Flask, SSEResilience], r: redis.Redis
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    pubsub = announcements(r, sid)
    with sse.producer(sid, app=app, coalesce_ms=60_000) as out:
        returned = [out.send("token", {"i": i}) for i in range(5)]
        assert returned == [""] * 5  # held: no id yet
        assert r.xlen(KEYS.log(sid)) == 0
        out.flush()
        assert r.xlen(KEYS.log(sid)) == 5
        out.send("token", {"i": 5})
    messages = drain(pubsub)
    # One announcement for the five, one for the sixth (flushed by the end),
    # one for the terminal event.
    assert [m.count("\n") // 4 + 1 for m in messages] == [5, 1, 1]
    events = sse.event_log(app).read(sid, None)
    assert [e.seq for e in events] == [1, 2, 3, 4, 5, 6, 7]
    assert len({e.id for e in events}) == 7
    assert [e.data for e in events[:6]] == [{"i": i} for i in range(6)]
    assert events[-1].type == "completed"


def test_the_first_send_of_a_window_is_written_when_the_window_ends(
    app_sse: tuple[Flask, SSEResilience], r: redis.Redis
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    with sse.producer(sid, app=app, coalesce_ms=200) as out:
        out.send("token", "a")
        sent = time.monotonic()
        time.sleep(0.1)
        out.send("token", "b")  # same window: not later than the first
        assert r.xlen(KEYS.log(sid)) == 0
        while r.xlen(KEYS.log(sid)) < 2:
            assert time.monotonic() - sent < 5, "the window's timer never flushed"
            time.sleep(0.01)
        # Written together, no earlier than the window's end.
        assert time.monotonic() - sent >= 0.19
        out.send("token", "c")  # a new window
        while r.xlen(KEYS.log(sid)) < 3:
            assert time.monotonic() - sent < 5
            time.sleep(0.01)
        out.complete("done")
    assert [e.data for e in sse.event_log(app).read(sid, None)] == [
        "a",
        "b",
        "c",
        "done",
    ]


@pytest.mark.parametrize("end", ["complete", "fail", "exception"])
def test_terminal_writes_flush_first(
    app_sse: tuple[Flask, SSEResilience], end: str
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    with pytest.raises(KeyError) if end == "exception" else _nothing():  # noqa: SIM117
        with sse.producer(sid, app=app, coalesce_ms=60_000) as out:
            for i in range(3):
                out.send("token", i)
            if end == "complete":
                out.complete("ok")
            elif end == "fail":
                out.fail("bad")
            else:
                raise KeyError("boom")
    events = sse.event_log(app).read(sid, None)
    assert [e.data for e in events[:3]] == [0, 1, 2]
    assert [e.seq for e in events] == [1, 2, 3, 4]
    assert events[-1].type == ("completed" if end == "complete" else "failed")


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def test_a_producer_that_stops_by_itself_writes_what_it_held(
    app_sse: tuple[Flask, SSEResilience],
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    with sse.producer(sid, app=app, coalesce_ms=60_000) as out:
        out.send("token", "a")
        out.send("token", "b")
        out.cancel({"text": "ab"})
    events = sse.event_log(app).read(sid, None)
    assert [e.type for e in events] == ["token", "token", "cancelled"]
    assert events[-1].data == {"reason": None, "by": "app", "partial": {"text": "ab"}}


def test_what_was_sent_before_a_cancel_request_goes_out_before_the_end(
    app_sse: tuple[Flask, SSEResilience],
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    with sse.producer(sid, app=app, coalesce_ms=60_000) as out:
        out.send("token", "a")
        out.flush()
        out.send("token", "b")  # held when the request comes
        sse.cancel(sid, "stop", app=app)
        deadline = time.monotonic() + 5
        while not out.cancelled:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        with pytest.raises(StreamCancelled):
            out.send("token", "c")
        out.cancel({"text": "ab"})
    events = sse.event_log(app).read(sid, None)
    # The partial result is what followers received: "b" was sent before.
    assert [e.type for e in events] == ["token", "token", "cancelled"]
    assert [e.data for e in events[:2]] == ["a", "b"]
    assert [e.seq for e in events] == [1, 2, 3]
    assert events[-1].data["partial"] == {"text": "ab"}
    assert sse.get_stream(sid, app=app).state is StreamState.CANCELLED


def test_a_refused_background_write_is_still_written_by_the_cancel(
    app_sse: tuple[Flask, SSEResilience],
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    out = sse.producer(sid, app=app, coalesce_ms=50)
    out._subscribe_cancels = None  # no fast path: the refused write tells the producer
    with out:
        sse.cancel(sid, "stop", app=app)
        out.send("token", "a")
        deadline = time.monotonic() + 5
        while not out.cancelled:  # the window's write was refused
            assert time.monotonic() < deadline
            time.sleep(0.01)
        out.cancel({"text": "a"})
    events = sse.event_log(app).read(sid, None)
    assert [(e.type, e.data) for e in events] == [
        ("token", "a"),
        ("cancelled", {"reason": "stop", "by": "app", "partial": {"text": "a"}}),
    ]


def test_a_fenced_producer_drops_what_it_held(
    app_sse: tuple[Flask, SSEResilience], r: redis.Redis
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    with sse.producer(sid, app=app, coalesce_ms=60_000) as out:
        out.send("token", "a")
        # Ended cancelled without this producer (the guardian's fence).
        sse.cancel(sid, "stop", app=app)
        r.hset(KEYS.stream(sid), "cancelAt", 0)
        sse.event_log(app).finish(
            sid, state=StreamState.CANCELLED, event_type="cancelled",
            data_json="null", grace_ms=0,
        )  # fmt: skip
        assert out.cancel({"text": "a"}) == ""
    assert [e.type for e in sse.event_log(app).read(sid, None)] == ["cancelled"]


def test_a_failed_background_write_is_raised_by_the_next_call(
    app_sse: tuple[Flask, SSEResilience],
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    out = sse.producer(sid, app=app, coalesce_ms=50)
    # Leaving raises too: the stream ended under this producer.
    with pytest.raises(StreamNotActiveError), out:
        out.send("token", "a")
        out.flush()
        # Another producer takes the stream over; our next batch is refused.
        with sse.producer(sid, app=app) as other:
            out.send("token", "b")
            time.sleep(0.3)  # the window's timer tried, and failed
            with pytest.raises(ProducerConflictError):
                out.send("token", "c")
            other.complete("theirs")
        with pytest.raises(StreamNotActiveError):
            out.flush()  # still held, now refused as ended
    assert [e.data for e in sse.event_log(app).read(sid, None)] == ["a", "theirs"]


def test_a_batch_retried_after_a_lost_reply_is_not_doubled(
    app_sse: tuple[Flask, SSEResilience], r: redis.Redis
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    log = sse.event_log(app)
    token = "t" * 24
    log.claim(sid, token)
    batch = [("token", '"a"'), ("token", '"b"'), ("token", '"c"')]
    first = log.append_many(sid, token, 1, batch)
    assert log.append_many(sid, token, 1, batch) == first  # acknowledged
    assert r.xlen(KEYS.log(sid)) == 3


@pytest.mark.parametrize("cut", range(1, 6))
def test_a_client_cut_anywhere_in_a_batch_resumes_with_nothing_lost_or_doubled(
    app_sse: tuple[Flask, SSEResilience], cut: int
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    with sse.producer(sid, app=app, coalesce_ms=60_000) as out:
        for i in range(5):
            out.send("token", i)
        out.flush()
        client = app.test_client()
        login(client, "alice")
        # The batch arrives as five events with their own ids; cut after `cut`.
        first, _ = read(open_stream(client, f"/sse/streams/{sid}"), limit=1 + cut)
        assert types(first) == ["connected"] + ["token"] * cut
        last_id = first[-1].id
        out.send("token", 5)
        out.complete("end")
    rest, _ = read(open_stream(client, f"/sse/streams/{sid}", last_id))
    assert data(rest)[1:] == list(range(cut, 6)) + ["end"]
    ids = [e.id for e in first[1:] + rest[1:]]
    assert len(ids) == len(set(ids)) == 7


def test_a_full_batch_is_written_at_once_and_its_error_comes_next(
    app_sse: tuple[Flask, SSEResilience],
    r: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flask_sse_resilience.produce import coalescer as coalescing

    monkeypatch.setattr(coalescing, "MAX_BATCH", 3)
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    out = sse.producer(sid, app=app, coalesce_ms=60_000)
    out._subscribe_cancels = None  # only a refused write tells it of the cancel
    with out:
        heartbeater = app.extensions["sse_resilience"].heartbeater
        heartbeater.discard(sid, out._flag.learn)  # nor does its heartbeat
        for i in range(3):
            out.send("token", i)
        assert r.xlen(KEYS.log(sid)) == 3  # the third filled the batch
        out.send("token", 3)
        sse.cancel(sid, "stop", app=app)
        out.send("token", 4)
        out.send("token", 5)  # fills the batch, whose write is refused...
        assert out.cancelled
        with pytest.raises(StreamCancelled):
            out.send("token", 6)  # ...which the next call says
        out.cancel({"text": "0-5"})
    events = sse.event_log(app).read(sid, None)
    # What send() took went out before the end; what it refused did not.
    assert [e.data for e in events[:-1]] == [0, 1, 2, 3, 4, 5]
    assert events[-1].type == "cancelled"


def test_the_leading_edge_writes_a_send_to_a_quiet_stream_at_once(
    make_app: AppFactory, r: redis.Redis
) -> None:
    """The default: a send that finds the stream quiet is written before
    ``send`` returns; the sends close behind it wait for the window after
    that write; once the stream is quiet again, the next one goes at once."""
    app, sse = make_app()  # SSE_RESILIENCE_COALESCE_LEADING: the default, True
    sid = sse.open_stream("alice", app=app)
    with sse.producer(sid, app=app, coalesce_ms=300) as out:
        assert out.send("token", "a") == ""  # with a window, never an id
        written = time.monotonic()
        assert r.xlen(KEYS.log(sid)) == 1  # not held
        out.send("token", "b")
        out.send("token", "c")
        assert r.xlen(KEYS.log(sid)) == 1  # close behind: held
        while r.xlen(KEYS.log(sid)) < 3:
            assert time.monotonic() - written < 5, "the window's timer never flushed"
            time.sleep(0.005)
        assert time.monotonic() - written >= 0.29  # the window after the write
        time.sleep(0.35)  # quiet again
        out.send("token", "d")
        assert r.xlen(KEYS.log(sid)) == 4
        out.complete("done")
    events = sse.event_log(app).read(sid, None)
    assert [e.data for e in events] == ["a", "b", "c", "d", "done"]


def test_a_burst_after_quiet_is_one_write_then_one_batch(
    make_app: AppFactory, r: redis.Redis
) -> None:
    """Fifty sends in a burst: the first leads, the other 49 are one batch,
    so a token stream keeps the savings of the window."""
    app, sse = make_app()
    sid = sse.open_stream("alice", app=app)
    pubsub = announcements(r, sid)
    with sse.producer(sid, app=app, coalesce_ms=200) as out:
        for i in range(50):
            out.send("token", i)
        out.flush()
    messages = drain(pubsub)
    assert [m.count("\n") // 4 + 1 for m in messages] == [1, 49, 1]
    events = sse.event_log(app).read(sid, None)
    assert [e.data for e in events[:50]] == list(range(50))
