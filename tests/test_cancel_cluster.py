"""Cancellation and keys on a Redis Cluster: every script stays in one slot,
and the fast path rides sharded pub/sub (SSUBSCRIBE on the stream's node)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, session

from flask_sse_resilience import SSEResilience, StreamCancelled, StreamState
from flask_sse_resilience.store.keys import Keys
from harness.redis_topologies import ClusterFixture

KEYS = Keys("sse:")


@pytest.fixture
def cluster_app(cluster: ClusterFixture) -> Iterator[tuple[Flask, SSEResilience]]:
    cluster.wait_healthy()
    cluster.client().flushall()
    app = Flask("cluster_cancel")
    app.config.update(
        SECRET_KEY="test",
        SSE_RESILIENCE_REDIS_URL=cluster.url,
        # Heartbeats far apart: a cancel seen within 2 s came over pub/sub.
        SSE_RESILIENCE_HEARTBEAT_INTERVAL=5,
        SSE_RESILIENCE_STALE_THRESHOLD=10,
        SSE_RESILIENCE_CANCEL_GRACE=1,
        SSE_RESILIENCE_GUARDIAN_ENABLED=False,
    )
    sse = SSEResilience(app, identity=lambda: session.get("user"))
    yield app, sse
    app.extensions["sse_resilience"].close()


def until(check: Any, seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.01)


def test_cancel_over_sharded_pubsub_and_keys_on_a_cluster(
    cluster_app: tuple[Flask, SSEResilience], cluster: ClusterFixture
) -> None:
    app, sse = cluster_app
    # Keys on several nodes: each keyed stream lands in its key's slot.
    keys = [f"chat-{i}" for i in range(6)]
    ids = [sse.open_stream("alice", key=k, app=app) for k in keys]
    nodes = {cluster.master_of(KEYS.stream(sid)).port for sid in ids}
    assert len(nodes) > 1
    for key, sid in zip(keys, ids, strict=True):
        assert KEYS.shard(sid) == KEYS.key_shard("alice", key)
    producers = [sse.producer(sid, app=app) for sid in ids]
    outs = [p.__enter__() for p in producers]
    time.sleep(0.3)  # the SSUBSCRIBEs are confirmed
    for sid in ids:
        assert sse.cancel(sid, "stop", app=app) is StreamState.ACTIVE
    until(lambda: all(out.cancelled for out in outs), 2)
    for producer, out in zip(producers, outs, strict=True):
        out.cancel({"n": 1})
        producer.__exit__(None, None, None)
    for sid in ids:
        completion = sse.get_completion(sid, app=app)
        assert completion.terminal_event_data["partial"] == {"n": 1}
    # A superseding open on a cluster: atomic in the key's slot.
    first = sse.open_stream("alice", key="chat-x", app=app)
    second = sse.open_stream("alice", key="chat-x", on_conflict="cancel", app=app)
    assert sse.get_stream(first, app=app).state is StreamState.CANCELLED
    joined = sse.open_stream("alice", key="chat-x", on_conflict="join", app=app)
    assert joined == second and joined.joined


def test_fence_and_abandon_on_a_cluster(
    cluster_app: tuple[Flask, SSEResilience],
) -> None:
    app, sse = cluster_app
    ignored = sse.open_stream("alice", app=app)
    lonely = sse.open_stream("alice", cancel_when_abandoned=1, app=app)
    with sse.producer(ignored, app=app) as out, sse.producer(lonely, app=app):
        sse.cancel(ignored, app=app)
        time.sleep(1.2)  # past the grace (1 s) and the abandon time (1 s)
        result = sse.guardian(app).run_once(force=True)
        assert result.cancelled == (ignored,)
        assert result.abandoned == (lonely,)
        out._flag.request = False
        with pytest.raises(StreamCancelled):
            out.send("token", 1)
            out.flush()  # held for its window (the default), then refused
    data = sse.get_completion(lonely, app=app).terminal_event_data
    assert data == {"reason": None, "by": "abandoned"}
