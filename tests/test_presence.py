"""Followers of a stream whose record vanishes, or ends unheard, are ended.

First the check itself (:mod:`flask_sse_resilience.serve.presence`), run by hand on
a broker: what it reads, in how many round trips, and what each follower gets.
Then every way a record disappears, through the app, with a slow producer (it
writes less often than the heartbeat interval, so its own writes never notice
in time): each follower ends with the documented event within the bound the
protocol page states, one heartbeat interval plus the check's round trips.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from flask import Flask
from werkzeug.test import TestResponse

from flask_sse_resilience import SSEResilience, StreamNotActiveError, StreamState, wire
from flask_sse_resilience.models import Event
from flask_sse_resilience.redisio.connect import make_client
from flask_sse_resilience.redisio.failures import UNAVAILABLE
from flask_sse_resilience.serve.broker import Broker
from flask_sse_resilience.serve.presence import PresenceCheck
from flask_sse_resilience.serve.timeline import EXPIRED, LOST, Follower, Notice
from flask_sse_resilience.store.completion import CompletionStore
from flask_sse_resilience.store.eventlog import EventLog
from flask_sse_resilience.store.keys import Keys
from flask_sse_resilience.store.registry import StreamRegistry
from flask_sse_resilience.store.scripts import Scripts, finish
from harness.redis_server import RedisServer
from harness.roundtrips import RoundTrips, counting_client

from .conftest import AppFactory
from .sse import envelope, parse
from .streams import chunks, login, open_stream

KEYS = Keys("sse:")

#: The tests' heartbeat interval (``make_app``), and the bound on a
#: follower's end the protocol page states: one interval plus the check's
#: round trips (a few ms here; 0.1 s allowed).
HEARTBEAT = 0.3
BOUND = HEARTBEAT + 0.1
#: Allowance for a machine shared with other test runs: the scheduler, not
#: the design. A follower that is never ended fails by far.
MARGIN = 1.0

LOST_END = {"type": "failed", "data": {"reason": "lost"}}
EXPIRED_END = {"type": "failed", "data": {"reason": "expired"}}


# -- the check, run by hand --------------------------------------------------


class Parts:
    """A broker whose presence check a test runs itself (its own loop would
    only look every minute), on the stores of a real Redis."""

    def __init__(self, client: Any, pubsub: Any = None) -> None:
        self.client = client
        self.registry = StreamRegistry(client, KEYS, stream_ttl=60)
        self.log = EventLog(client, KEYS, max_events=100, completion_ttl=60)
        self.presence = PresenceCheck(
            self.registry, self.log, CompletionStore(client, KEYS, ttl=60), interval=60
        )
        # The pub/sub link may have a client of its own: its subscriptions
        # are no round trips of the check.
        self.broker = Broker(
            pubsub or client, KEYS, buffer=10, poll=0.1, presence=self.presence
        )

    def check(self) -> int:
        return self.presence.check(self.broker.timelines())

    def stream(self) -> str:
        return str(self.registry.register(None, user_id="u", stream_type="t"))


@pytest.fixture
def server(redis_factory: Callable[[], RedisServer]) -> RedisServer:
    return redis_factory()


@pytest.fixture
def parts(server: RedisServer) -> Iterator[Parts]:
    made = Parts(counting_client(server.port), server.client())
    yield made
    made.broker.stop()


def ended(follower: Follower) -> Event | Notice | None:
    """The end the follower is handed now, if any (past the events and
    RESYNC notices before it); another notice (say, RECONNECT) as such."""
    after = 0
    while True:
        item = follower.wait(after, timeout=0)
        if isinstance(item, list):
            after = item[-1].seq
        elif item is not Notice.RESYNC:
            return item


def test_one_round_trip_reads_each_followed_stream_once(parts: Parts) -> None:
    ids = [parts.stream() for _ in range(3)]
    followers = [parts.broker.subscribe(sid) for sid in ids for _ in range(4)]
    with RoundTrips() as trips:
        assert parts.check() == 0
    # Per stream, not per follower: 3 reads for 12 followers, one round trip.
    assert trips.count == 1 and parts.presence.reads == 3
    assert all(ended(f) is None for f in followers)


def test_a_gone_record_ends_its_followers_expired_or_lost(parts: Parts) -> None:
    old, young = parts.stream(), parts.stream()
    # The expiry each follower's admission read: one run out, one far off.
    past, future = time.monotonic() - 1, time.monotonic() + 3600
    followers = {
        old: [parts.broker.subscribe(old, past) for _ in range(2)],
        young: [parts.broker.subscribe(young, future) for _ in range(2)],
    }
    parts.client.delete(KEYS.stream(old), KEYS.stream(young), KEYS.active_of(old))
    assert parts.check() == 2
    assert [ended(f) for f in followers[old]] == [EXPIRED, EXPIRED]
    assert [ended(f) for f in followers[young]] == [LOST, LOST]
    with RoundTrips() as trips:
        assert parts.check() == 0  # told once: over streams are not read again
    assert trips.count == 0


def test_a_record_made_again_under_its_id_ends_the_old_followers(
    parts: Parts,
) -> None:
    sid = parts.stream()
    follower = parts.broker.subscribe(sid)
    assert parts.check() == 0  # the record's start is noted
    parts.client.delete(KEYS.stream(sid))
    time.sleep(0.002)  # another millisecond: another start
    parts.registry.register(sid, user_id="u", stream_type="t")
    assert parts.check() == 1
    assert ended(follower) == LOST


def heard(follower: Follower, seq: int, seconds: float = 10) -> None:
    """Wait until ``follower`` was handed the events up to ``seq`` (their
    announcements travel over pub/sub, so they may come a little later)."""
    deadline = time.monotonic() + seconds
    after = 0
    while after < seq:
        item = follower.wait(after, timeout=max(0.0, deadline - time.monotonic()))
        if isinstance(item, list):
            after = item[-1].seq
        elif item is None:
            raise AssertionError(f"the follower heard up to {after} of {seq}")


def end_unannounced(parts: Parts, sid: str, follower: Follower) -> list[str]:
    """Log two tokens (and wait until ``follower`` heard them), then end the
    stream ``completed`` announcing the end on a channel nobody hears; return
    the ids of the three events."""
    # The link subscribes in the background: tokens logged before it did are
    # not announced to it, and the check would then (correctly) tell a
    # follower at 0 that it is BEHIND (the log has the rest).
    deadline = time.monotonic() + 10
    while not dict(parts.client.pubsub_numsub(KEYS.channel(sid))).get(
        KEYS.channel(sid)
    ):
        assert time.monotonic() < deadline, "the broker never subscribed"
        time.sleep(0.01)
    token = "producer"
    parts.log.claim(sid, token)
    ids = [parts.log.append(sid, token, seq, "token", str(seq)) for seq in (1, 2)]
    heard(follower, 2)
    call = finish(
        KEYS, sid, state=StreamState.COMPLETED, event_type="completed",
        data_json='{"ok":true}', max_events=100, completion_ttl_ms=60_000,
        token=token, seq=3,
    )  # fmt: skip
    call.args[5] = "nobody-listens"  # the channel: the announcement is lost
    reply = Scripts(parts.client).run(call)
    return [*ids, reply[1]]


def test_an_ended_record_hands_its_followers_the_real_terminal_event(
    parts: Parts,
) -> None:
    sid = parts.stream()
    follower = parts.broker.subscribe(sid)
    ids = end_unannounced(parts, sid, follower)
    assert parts.check() == 1
    end = ended(follower)
    assert isinstance(end, Event), end
    assert (end.id, end.seq, end.type) == (ids[2], 3, "completed")
    assert end.data == {"ok": True}


def test_without_the_log_the_terminal_event_comes_from_the_completion_store(
    parts: Parts,
) -> None:
    with_completion, with_nothing = parts.stream(), parts.stream()
    followers = [parts.broker.subscribe(s) for s in (with_completion, with_nothing)]
    ids = end_unannounced(parts, with_completion, followers[0])
    end_unannounced(parts, with_nothing, followers[1])
    parts.client.delete(KEYS.log(with_completion), KEYS.log(with_nothing))
    parts.client.delete(KEYS.completion(with_nothing))  # evicted, say
    assert parts.check() == 2
    end = ended(followers[0])
    assert isinstance(end, Event), end
    assert (end.id, end.seq, end.type) == (ids[2], 3, "completed")
    assert ended(followers[1]) == LOST  # ended, but nothing of its end is left


def test_an_unavailable_redis_is_no_verdict(server: RedisServer) -> None:
    parts = Parts(make_client(server.url, max_connections=4))
    try:
        sid = parts.stream()
        follower = parts.broker.subscribe(sid)
        timeline = parts.broker.timelines()[sid]
        server.kill()
        with pytest.raises(UNAVAILABLE):
            parts.check()
        assert timeline.end is None and parts.presence.ended == 0
        # A Redis that answers without the record (restarted empty, or a
        # replica promoted without it): the record is gone, so is the stream.
        # (This follower was told to reconnect as the pub/sub link broke; a
        # follower that came meanwhile gets the end.)
        server.start()
        assert parts.check() == 1
        assert timeline.end == LOST and follower.timeline is timeline
    finally:
        parts.broker.stop()


def test_on_a_cluster_each_node_is_read_in_one_pipeline(cluster: Any) -> None:
    parts = Parts(make_client(cluster.url, max_connections=4))
    try:
        ids = [parts.stream() for _ in range(12)]  # spread over the nodes
        followers = [parts.broker.subscribe(sid) for sid in ids]
        assert parts.check() == 0
        gone = ids[::3]
        for sid in gone:
            parts.client.delete(KEYS.stream(sid))
        assert parts.check() == len(gone)
        assert [ended(f) == LOST for f in followers] == [s in gone for s in ids]
    finally:
        parts.broker.stop()


# -- every way a record disappears, through the app --------------------------


class SlowProducer:
    """A producer writing a token every ``every`` seconds (longer than the
    heartbeat interval) until told to finish, or its stream is gone."""

    def __init__(
        self, sse: SSEResilience, app: Flask, sid: str, every: float = 1.0
    ) -> None:
        self.error: Exception | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(sse, app, sid, every), daemon=True
        )
        self._thread.start()
        assert self._ready.wait(5)

    def _run(self, sse: SSEResilience, app: Flask, sid: str, every: float) -> None:
        try:
            with sse.producer(sid, app=app) as out:
                self._ready.set()
                sent = 0
                while not self._stop.wait(every):
                    out.send("token", sent)
                    sent += 1
                out.complete({"tokens": sent})
        except Exception as exc:  # noqa: BLE001 - reported by finish()
            self.error = exc
        finally:
            self._ready.set()

    def finish(self) -> Exception | None:
        """Complete the stream (if it is still there); return the error the
        producer met, if any."""
        self._stop.set()
        self._thread.join(10)
        return self.error


def follow(app: Flask, url: str) -> Iterator[dict[str, Any]]:
    """Open ``url`` and return its events (envelopes, keep-alives left out)
    once it follows live events: past its first keep-alive."""
    client = app.test_client()
    login(client, "alice")
    response: TestResponse = open_stream(client, url)
    assert response.status_code == 200
    raw: list[bytes] = []
    frames = chunks(response, raw)
    for chunk in frames:
        if chunk == wire.KEEPALIVE:
            break

    def events() -> Iterator[dict[str, Any]]:
        for event in parse(frames):
            if event.data and event.event != "heartbeat":
                yield envelope(event)

    return events()


def end_of(events: Iterator[dict[str, Any]], seconds: float = 10) -> dict[str, Any]:
    """The last event of a response; fails if it is still open after
    ``seconds`` (keep-alives count: they are what a hung follower gets)."""
    deadline = time.monotonic() + seconds
    last: dict[str, Any] | None = None
    for last in events:  # noqa: B007 - the last one is the answer
        assert time.monotonic() < deadline, f"still open after {seconds}s"
    assert last is not None
    return last


def within_bound(since: float) -> float:
    elapsed = time.monotonic() - since
    assert elapsed < BOUND + MARGIN, f"ended {elapsed:.2f}s after the record went"
    return elapsed


@pytest.fixture
def app_sse(make_app: AppFactory) -> tuple[Flask, SSEResilience]:
    return make_app()


@pytest.mark.parametrize("index_too", [False, True], ids=["record", "and-index"])
def test_a_deleted_record_ends_every_follower_lost(
    index_too: bool, app_sse: tuple[Flask, SSEResilience], r: redis.Redis
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    producer = SlowProducer(sse, app, sid)
    followers = [follow(app, f"/sse/streams/{sid}") for _ in range(2)]
    # Without its index entry, the producer's heartbeat cannot tell the
    # followers either: the presence check alone does.
    r.delete(KEYS.stream(sid), *([KEYS.active_of(sid)] if index_too else []))
    gone = time.monotonic()
    for events in followers:
        assert end_of(events) == LOST_END
        within_bound(gone)
    assert "does not exist" in str(producer.finish())
    client = app.test_client()
    login(client, "alice")
    assert client.get(f"/sse/streams/{sid}/recover").status_code == 404


def test_an_expired_record_ends_every_follower_expired(
    app_sse: tuple[Flask, SSEResilience], r: redis.Redis
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app, ttl=2)
    producer = SlowProducer(sse, app, sid)
    followers = [follow(app, f"/sse/streams/{sid}") for _ in range(2)]
    expires = time.monotonic() + r.pttl(KEYS.stream(sid)) / 1000
    for events in followers:
        assert end_of(events) == EXPIRED_END
        assert time.monotonic() >= expires - 0.05
        within_bound(expires)
    assert producer.finish() is not None


def test_an_evicted_record_ends_every_follower_though_the_index_went_too(
    make_app: AppFactory,
) -> None:
    server = RedisServer(
        None, "--maxmemory", "4mb", "--maxmemory-policy", "allkeys-lru"
    ).start()
    try:
        app, sse = make_app({"SSE_RESILIENCE_REDIS_URL": server.url})
        ids = [sse.open_stream("alice", app=app) for _ in range(3)]
        producers = [SlowProducer(sse, app, sid) for sid in ids]
        followers = [follow(app, f"/sse/streams/{sid}") for sid in ids]
        filler = server.client()
        # Newer keys until the records and their index entries are evicted (an
        # index entry may also be dropped by its producer's heartbeat once the
        # record is gone): the guardian has nothing left to find them by.
        ours = [KEYS.stream(sid) for sid in ids] + [KEYS.active_of(s) for s in ids]
        written, gone = 0, None
        while filler.exists(*ours):
            assert written < 20_000, "the records were never evicted"
            pipe = filler.pipeline(transaction=False)
            for _ in range(10):
                pipe.set(f"filler:{written}", "x" * 20_000)
                written += 1
            pipe.exists(*ours[:3])
            if not pipe.execute()[-1] and gone is None:
                gone = time.monotonic()  # the records, at the latest
        assert gone is not None
        assert int(filler.info("stats")["evicted_keys"]) > 0
        for events in followers:
            assert end_of(events) == LOST_END
            within_bound(gone)
        assert all(p.finish() is not None for p in producers)
    finally:
        server.cleanup()


def test_a_flushed_database_ends_every_follower_lost(
    app_sse: tuple[Flask, SSEResilience], r: redis.Redis
) -> None:
    app, sse = app_sse
    ids = [sse.open_stream("alice", app=app) for _ in range(3)]
    producers = [SlowProducer(sse, app, sid) for sid in ids]
    followers = [follow(app, f"/sse/streams/{sid}") for sid in ids for _ in range(2)]
    r.flushdb()
    gone = time.monotonic()
    for events in followers:
        assert end_of(events) == LOST_END
        within_bound(gone)
    assert all(p.finish() is not None for p in producers)


def test_each_stream_of_a_multiplexed_response_ends_the_same_way(
    app_sse: tuple[Flask, SSEResilience], r: redis.Redis
) -> None:
    app, sse = app_sse
    deleted, expiring = (
        sse.open_stream("alice", app=app),
        sse.open_stream("alice", app=app, ttl=3),
    )
    producers = [SlowProducer(sse, app, sid) for sid in (deleted, expiring)]
    events = follow(app, f"/sse/multi?streams={deleted},{expiring}")
    r.delete(KEYS.stream(deleted))
    gone = time.monotonic()
    ends: dict[str, dict[str, Any]] = {}
    for event in events:
        if event["type"] == "failed":
            ends[event["stream"]] = {"type": "failed", "data": event["data"]}
            if event["stream"] == deleted:
                within_bound(gone)  # the other stream goes on meanwhile
                gone = time.monotonic() + r.pttl(KEYS.stream(expiring)) / 1000
            else:
                within_bound(gone)
    assert ends == {deleted: LOST_END, expiring: EXPIRED_END}
    assert all(p.finish() is not None for p in producers)


def test_an_end_whose_announcement_was_lost_still_reaches_every_follower(
    app_sse: tuple[Flask, SSEResilience], r: redis.Redis
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    producer = SlowProducer(sse, app, sid)
    followers = [follow(app, f"/sse/streams/{sid}") for _ in range(2)]
    # The guardian's terminal write, announced on a channel nobody hears.
    call = finish(
        KEYS, sid, state=StreamState.COMPLETED, event_type="completed",
        data_json='{"by":"test"}', max_events=100, completion_ttl_ms=60_000,
        stale_ms=-1,
    )  # fmt: skip
    call.args[5] = "nobody-listens"
    end_id = Scripts(r).run(call)[1]
    ended_at = time.monotonic()
    for events in followers:
        last = end_of(events)
        assert last == {"type": "completed", "data": {"by": "test"}}
        within_bound(ended_at)  # one more round trip: the end's read
    assert r.hget(KEYS.stream(sid), "lastEventId") == end_id
    assert producer.finish() is not None  # its next write found it ended


def test_an_end_sent_while_the_pubsub_connection_was_cut_still_arrives(
    app_sse: tuple[Flask, SSEResilience], r: redis.Redis
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    producer = SlowProducer(sse, app, sid, every=0.5)
    events = follow(app, f"/sse/streams/{sid}")
    r.client_kill_filter(_type="pubsub")  # the worker's one listener
    assert producer.finish() is None  # completed meanwhile
    ended_at = time.monotonic()
    assert end_of(events)["type"] == "completed"
    within_bound(ended_at)


@pytest.mark.parametrize("how", ["client-pause", "sigstop"])
def test_redis_briefly_unavailable_ends_no_stream(
    how: str, make_app: AppFactory, redis_factory: Callable[[], RedisServer]
) -> None:
    server = redis_factory()
    app, sse = make_app({"SSE_RESILIENCE_REDIS_URL": server.url})
    sid = sse.open_stream("alice", app=app)
    producer = SlowProducer(sse, app, sid, every=0.5)
    events = follow(app, f"/sse/streams/{sid}")
    presence = app.extensions["sse_resilience"].broker.presence
    checks = presence.checks
    # Longer than the bound (three checks would come meanwhile): no verdict
    # is made without an answer from Redis.
    if how == "client-pause":
        server.client().client_pause(1000, all=True)
        time.sleep(1.0)
    else:
        server.pause()
        time.sleep(1.0)
        server.resume()
    deadline = time.monotonic() + 5
    while presence.checks < checks + 2:  # checks ran again since
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert producer.finish() is None
    assert end_of(events)["type"] == "completed"
    assert presence.ended == 0


def test_a_follower_behind_the_timeline_ends_too_when_the_log_went_with_it(
    make_app: AppFactory, r: redis.Redis
) -> None:
    app, sse = make_app({"SSE_RESILIENCE_LIVE_BUFFER": 4})
    sid = sse.open_stream("alice", app=app)
    producer = sse.producer(sid, app=app)
    out = producer.__enter__()
    events = follow(app, f"/sse/streams/{sid}")
    # The client reads nothing meanwhile: this worker keeps only the last 4.
    for i in range(20):
        out.send("token", i)
    timeline = app.extensions["sse_resilience"].broker.timelines()[sid]
    deadline = time.monotonic() + 5
    while timeline.events[-1].seq < 20:  # every announcement arrived
        assert time.monotonic() < deadline
        time.sleep(0.01)
    r.flushdb()  # the log goes with the record: nobody can fill the gap
    got = list(events)
    # Told of the gap (no spinning on a log that lacks it), then what this
    # worker still holds, then the end.
    assert got == [
        {"type": "reset", "data": {"reason": "log-trimmed"}},
        *({"type": "token", "data": i} for i in range(16, 20)),
        LOST_END,
    ]
    with pytest.raises(StreamNotActiveError):
        producer.__exit__(None, None, None)
