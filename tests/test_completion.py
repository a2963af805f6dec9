from __future__ import annotations

import json

import redis

from flask_sse_resilience import CompletionData
from flask_sse_resilience.models import StreamState
from flask_sse_resilience.store.completion import CompletionStore
from flask_sse_resilience.store.eventlog import EventLog
from flask_sse_resilience.store.keys import Keys
from flask_sse_resilience.store.registry import StreamRegistry

KEYS = Keys("sse:")


def test_the_terminal_write_fills_the_store_with_its_ttl(r: redis.Redis) -> None:
    StreamRegistry(r, KEYS, stream_ttl=3600).register(
        "s", user_id="alice", stream_type="t"
    )
    log = EventLog(r, KEYS, max_events=100, completion_ttl=300)
    seq = log.claim("s", "token").seq
    data = {"text": "hi", "n": [1, 2]}
    event_id = log.finish(
        "s",
        state=StreamState.COMPLETED,
        event_type="completed",
        data_json=json.dumps(data),
        token="token",
        seq=seq + 1,
    )
    store = CompletionStore(r, KEYS, ttl=300)
    found = store.get_completion("s")
    assert found is not None
    assert found == CompletionData(
        stream_id="s",
        terminal_event_type="completed",
        terminal_event_data=data,
        completed_at=found.completed_at,
        event_id=event_id,
        user_id="alice",
    )
    seconds, _ = r.time()
    assert abs(found.completed_at.timestamp() - int(seconds)) < 2
    assert 295 <= r.ttl(KEYS.completion("s")) <= 300


def test_missing_completion_is_none(r: redis.Redis) -> None:
    assert CompletionStore(r, KEYS, ttl=300).get_completion("x") is None
