from __future__ import annotations

from datetime import datetime, timezone

import redis

from flask_sse_resilience import CompletionData
from flask_sse_resilience.completion import CompletionStore
from flask_sse_resilience.keys import Keys

KEYS = Keys("sse:")


def test_store_and_get_round_trip_with_ttl(r: redis.Redis) -> None:
    store = CompletionStore(r, Keys("sse:"), ttl=300)
    when = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)
    data = CompletionData(
        stream_id="s",
        terminal_event_type="completed",
        terminal_event_data={"text": "hi", "n": [1, 2]},
        completed_at=when,
        event_id="1-0",
        user_id="alice",
    )
    store.store_completion(data)
    assert store.get_completion("s") == data
    assert 295 <= r.ttl(KEYS.completion("s")) <= 300


def test_missing_completion_is_none(r: redis.Redis) -> None:
    assert CompletionStore(r, Keys("sse:"), ttl=300).get_completion("x") is None
