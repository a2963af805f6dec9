"""Streams by key (one active stream per owner and key, atomically), per-stream
retention, and abandoned streams."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import redis
from flask import Flask

from flask_sse_resilience import SSEResilience, StreamKeyTaken, StreamState
from flask_sse_resilience.serve.timeline import Notice
from flask_sse_resilience.store.keys import Keys

from .conftest import AppFactory
from .streams import login, open_stream

KEYS = Keys("sse:")


@pytest.fixture
def app_sse(make_app: AppFactory) -> tuple[Flask, SSEResilience]:
    return make_app({"SSE_RESILIENCE_GUARDIAN_INTERVAL": 0.1})


def test_reject_join_and_cancel(app_sse: tuple[Flask, SSEResilience]) -> None:
    app, sse = app_sse
    first = sse.open_stream("alice", key="chat-1", app=app)
    assert not first.joined
    with pytest.raises(StreamKeyTaken) as taken:
        sse.open_stream("alice", key="chat-1", app=app)
    assert taken.value.stream_id == first
    joined = sse.open_stream("alice", key="chat-1", on_conflict="join", app=app)
    assert joined == first and joined.joined
    second = sse.open_stream("alice", key="chat-1", on_conflict="cancel", app=app)
    assert second != first
    assert sse.get_stream(first, app=app).state is StreamState.CANCELLED
    assert sse.get_completion(first, app=app).terminal_event_data == {
        "reason": None,
        "by": "superseded",
    }
    assert sse.get_stream(second, app=app).key == "chat-1"
    # Keys are per owner: bob's chat-1 is another key.
    bobs = sse.open_stream("bob", key="chat-1", app=app)
    assert sse.get_stream(second, app=app).state is StreamState.ACTIVE
    assert bobs not in (first, second)
    # Once the stream ended, the key is free again.
    with sse.producer(second, app=app) as out:
        out.complete("ok")
    third = sse.open_stream("alice", key="chat-1", app=app)
    assert third not in (first, second) and not third.joined


def test_a_superseded_producer_is_stopped(
    app_sse: tuple[Flask, SSEResilience],
) -> None:
    app, sse = app_sse
    old = sse.open_stream("alice", key="chat-2", app=app)
    with sse.producer(old, app=app) as out:
        out.send("token", 1)
        sse.open_stream("alice", key="chat-2", on_conflict="cancel", app=app)
        deadline = time.monotonic() + 2
        while not out.cancelled:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    assert [e.type for e in sse.event_log(app).read(old, None)] == [
        "token",
        "cancelled",
    ]


@pytest.mark.parametrize("policy", ["reject", "cancel", "join"])
def test_racing_opens_leave_one_active_stream(
    app_sse: tuple[Flask, SSEResilience], policy: Any
) -> None:
    app, sse = app_sse
    for trial in range(20):
        key = f"race-{trial}"
        go = threading.Barrier(8)
        opened: list[str] = []
        refused: list[str] = []

        def open_one(
            go: threading.Barrier = go,
            key: str = key,
            opened: list[str] = opened,
            refused: list[str] = refused,
        ) -> None:
            go.wait()
            try:
                sid = sse.open_stream("alice", key=key, on_conflict=policy, app=app)
                opened.append(sid)
            except StreamKeyTaken as exc:
                refused.append(exc.stream_id)

        threads = [threading.Thread(target=open_one) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        records = [sse.get_stream(sid, app=app) for sid in set(opened)]
        active = [r.stream_id for r in records if r.state is StreamState.ACTIVE]
        assert len(active) == 1, (policy, records)
        if policy == "reject":
            assert len(opened) == 1 and set(refused) == set(active)
        elif policy == "join":
            assert set(opened) == set(active)
        else:  # each won in turn (or gave up), all but the last cancelled
            assert len(opened) + len(refused) == 8 and len(opened) >= 1
            ended = [r for r in records if r.state is not StreamState.ACTIVE]
            assert {r.state for r in ended} <= {StreamState.CANCELLED}


def test_bad_keys_and_options_are_value_errors(
    app_sse: tuple[Flask, SSEResilience],
) -> None:
    app, sse = app_sse
    for bad in ("", "a b", "x" * 129, "a:b", "{s1}"):
        with pytest.raises(ValueError, match="key"):
            sse.open_stream("alice", key=bad, app=app)
    with pytest.raises(ValueError, match="on_conflict"):
        sse.open_stream("alice", key="k", on_conflict="replace", app=app)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="stream_id"):
        sse.open_stream("alice", stream_id="mine", key="k", app=app)
    for policy in ("cancel", "join"):  # about a key's running stream: no key, no say
        with pytest.raises(ValueError) as keyless:
            sse.open_stream("alice", on_conflict=policy, app=app)  # type: ignore[arg-type]
        assert str(keyless.value) == (
            f"on_conflict={policy!r} only applies with key=: pass the key (say, "
            f"a chat id) whose running stream it should {policy}, or leave "
            "on_conflict out"
        )
    for option, value in (
        ("ttl", 0),
        ("ttl", 10**9),
        ("completion_ttl", -1),
        ("max_events", 0),
        ("max_events", 1.5),
        ("cancel_when_abandoned", 0.5),
    ):
        with pytest.raises(ValueError, match=option):
            sse.open_stream("alice", app=app, **{option: value})


def test_per_stream_retention(
    app_sse: tuple[Flask, SSEResilience], r: redis.Redis
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", ttl=60, completion_ttl=7, max_events=100, app=app)
    assert 55 <= r.ttl(KEYS.stream(sid)) <= 60
    with sse.producer(sid, app=app) as out:
        for i in range(1000):
            out.send("token", i)
        out.complete("done")
    assert r.xlen(KEYS.log(sid)) < 300  # capped near 100 (MAXLEN ~), not 10,000
    for key in (KEYS.stream(sid), KEYS.log(sid), KEYS.completion(sid)):
        assert 0 < r.ttl(key) <= 7
    plain = sse.open_stream("alice", app=app)
    assert r.ttl(KEYS.stream(plain)) > 3000  # the setting: 3600


class Follower:
    """A client following a stream on a thread, as a server would run it."""

    def __init__(self, client: Any, sid: str, app: Flask) -> None:
        self.sid, self.app = sid, app
        self.response = open_stream(client, f"/sse/streams/{sid}")
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for _ in self.response.response:
                pass
        except Exception:  # noqa: BLE001 - closed under our feet
            pass

    def close(self) -> None:
        """The client goes away (as the disconnect watcher reports it)."""
        broker = self.app.extensions["sse_resilience"].broker
        while self.thread.is_alive():
            broker.close_streams([self.sid], Notice.DISCONNECTED)
            self.thread.join(0.05)
        self.response.close()


def test_an_abandoned_stream_is_cancelled_a_followed_one_is_not(
    app_sse: tuple[Flask, SSEResilience],
) -> None:
    app, sse = app_sse
    sse.start_background(app)
    client = app.test_client()
    login(client, "alice")
    # Leases last 0.9 s here (renewed every 0.3 s): 2 s leaves room for a
    # loaded machine's late renewal; a reload is gone for 0.3 s.
    lonely = sse.open_stream("alice", cancel_when_abandoned=1, app=app)
    watched = sse.open_stream("alice", cancel_when_abandoned=2, app=app)
    reloaded = sse.open_stream("alice", cancel_when_abandoned=2, app=app)
    followers = [Follower(client, sid, app) for sid in (watched, reloaded)]
    producers = [sse.producer(s, app=app) for s in (lonely, watched, reloaded)]
    outs = [p.__enter__() for p in producers]
    started = time.monotonic()
    while time.monotonic() - started < 4:
        if time.monotonic() - started > 1:
            # a page reload: gone for 0.3 s, then back
            followers[1].close()
            time.sleep(0.3)
            followers[1] = Follower(client, reloaded, app)
        time.sleep(0.3)
        for out in outs:
            if not out.cancelled:
                out.send("token", 1)
    assert outs[0].cancelled
    assert not outs[1].cancelled and not outs[2].cancelled
    for producer in producers:
        producer.__exit__(None, None, None)
    for follower in followers:
        follower.close()
    data = sse.get_completion(lonely, app=app).terminal_event_data
    assert data == {"reason": None, "by": "abandoned"}
    assert sse.get_stream(watched, app=app).state is StreamState.COMPLETED


def test_the_config_default_for_abandoned_streams(make_app: AppFactory) -> None:
    app, sse = make_app(
        {
            "SSE_RESILIENCE_CANCEL_WHEN_ABANDONED": 1,
            "SSE_RESILIENCE_GUARDIAN_INTERVAL": 0.1,
        }
    )
    sse.start_background(app)
    sid = sse.open_stream("alice", app=app)
    kept = sse.open_stream("alice", cancel_when_abandoned=0, app=app)
    with sse.producer(sid, app=app) as out, sse.producer(kept, app=app) as other:
        deadline = time.monotonic() + 4
        while not out.cancelled:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert not other.cancelled


def test_a_key_finds_its_stream_as_long_as_the_stream_is_kept(
    app_sse: tuple[Flask, SSEResilience], r: redis.Redis
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", key="k", ttl=60, completion_ttl=30, app=app)
    pointer = KEYS.key_pointer("alice", "k")
    assert r.get(pointer) == sid
    assert 85 <= r.ttl(pointer) <= 90  # the stream's 60 s plus its end's 30 s
    plain = sse.open_stream("alice", key="k2", ttl=60, app=app)
    assert r.get(KEYS.key_pointer("alice", "k2")) == plain
    assert 355 <= r.ttl(KEYS.key_pointer("alice", "k2")) <= 360  # + 300 s
