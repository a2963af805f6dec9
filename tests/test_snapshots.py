"""Snapshots for late joiners, and where a client without a cursor starts."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from flask import Flask

from flask_sse_resilience import AutoSnapshot, InvalidEventError, SSEResilience
from flask_sse_resilience.store.keys import Keys

from .conftest import AppFactory
from .streams import data, login, open_stream, read, types

KEYS = Keys("sse:")


@pytest.fixture
def app_sse(make_app: AppFactory) -> tuple[Flask, SSEResilience]:
    return make_app()


def follow(app: Flask, sid: str, query: str = "", last_id: str | None = None,
           limit: int = 10_000) -> list[Any]:  # fmt: skip
    client = app.test_client()
    login(client, "alice")
    events, _ = read(open_stream(client, f"/sse/streams/{sid}{query}", last_id),
                     limit=limit)  # fmt: skip
    return events


def test_a_late_joiner_gets_the_snapshot_then_what_follows_it(
    app_sse: tuple[Flask, SSEResilience],
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    with sse.producer(sid, app=app) as out:
        for word in ("Hel", "lo", " wor"):
            out.send("token", {"text": word})
        covered = out.snapshot({"text": "Hello wor"})
        out.send("token", {"text": "ld"})
        events = follow(app, sid, limit=3)
        assert types(events) == ["connected", "snapshot", "token"]
        assert data(events)[1:] == [{"text": "Hello wor"}, {"text": "ld"}]
        assert events[1].id == covered  # its cursor: the last event it covers
        # With a cursor: exactly what it lacks, snapshot or not.
        first = sse.event_log(app).read(sid, None)[0]
        resumed = follow(app, sid, last_id=first.id, limit=4)
        assert data(resumed)[1:] == [{"text": "lo"}, {"text": " wor"}, {"text": "ld"}]
        # from=start: the whole log; from=latest: only what comes next.
        assert len(follow(app, sid, "?from=start", limit=5)) == 5
        out.send("token", {"text": "!"})
        latest = follow(app, sid, "?from=latest", limit=1)
        assert types(latest) == ["connected"]
        out.complete({"text": "Hello world!"})
    # Ended: a late joiner gets the end alone, and the snapshot is gone.
    assert types(follow(app, sid)) == ["connected", "completed"]
    assert types(follow(app, sid, "?from=latest")) == ["connected", "completed"]


def test_from_latest_follows_only_new_events(
    app_sse: tuple[Flask, SSEResilience], r: redis.Redis
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    client = app.test_client()
    login(client, "alice")
    with sse.producer(sid, app=app) as out:
        out.send("token", 1)
        out.snapshot("one")
        response = open_stream(client, f"/sse/streams/{sid}?from=latest")
        out.send("token", 2)
        out.complete("done")
    events, _ = read(response)
    assert data(events)[1:] == [2, "done"]
    assert not r.exists(KEYS.snapshot(sid))


def test_a_snapshot_before_the_first_event_has_no_id(
    app_sse: tuple[Flask, SSEResilience],
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    with sse.producer(sid, app=app) as out:
        assert out.snapshot({"text": ""}) == ""
        out.send("token", 1)
        events = follow(app, sid, limit=3)
        assert types(events) == ["connected", "snapshot", "token"]
        assert events[1].id == ""  # no cursor: it covers nothing logged
        out.complete(None)


def test_auto_snapshots_fold_every_nth_event(
    app_sse: tuple[Flask, SSEResilience], r: redis.Redis
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    keep = AutoSnapshot(3, lambda text, _type, d: text + d["text"], "")
    with sse.producer(sid, app=app, coalesce_ms=60_000, snapshots=keep) as out:
        for i in range(7):
            out.send("token", {"text": str(i)})
        # The third and sixth sends stored a snapshot (flushing what was held).
        assert r.xlen(KEYS.log(sid)) == 6
        out.flush()
        events = follow(app, sid, limit=3)
        assert data(events)[1:] == ["012345", {"text": "6"}]
        out.complete(None)


def test_bad_snapshots_and_modes_are_refused(
    app_sse: tuple[Flask, SSEResilience],
) -> None:
    app, sse = app_sse
    sid = sse.open_stream("alice", app=app)
    with sse.producer(sid, app=app) as out:
        with pytest.raises(InvalidEventError):
            out.send("snapshot", "reserved")
        with pytest.raises(InvalidEventError):
            out.snapshot({1, 2})
        client = app.test_client()
        login(client, "alice")
        response = client.get(f"/sse/streams/{sid}?from=middle")
        assert response.status_code == 400
        assert response.get_json()["error"] == "invalid_from"
    with pytest.raises(ValueError, match="every"):
        AutoSnapshot(0, lambda *a: None)


def test_an_auto_snapshot_over_the_size_limit_is_skipped_not_raised(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    app, sse = make_app({"SSE_RESILIENCE_MAX_EVENT_BYTES": 100})
    sid = sse.open_stream("alice", app=app)
    keep = AutoSnapshot(2, lambda text, _type, d: text + d, "")
    with sse.producer(sid, app=app, snapshots=keep) as out:
        for _ in range(4):
            out.send("token", "x" * 40)  # the second snapshot is too large
        assert sse.get_stream(sid, app=app).snapshot_id is not None
    assert [e.type for e in sse.event_log(app).read(sid, None)].count("token") == 4
    assert "no snapshot at 4" in caplog.text
