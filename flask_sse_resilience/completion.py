"""The completion store: each finished stream's terminal event, kept for a while.

The producer's terminal write (:meth:`EventLog.finish
<flask_sse_resilience.eventlog.EventLog.finish>`) fills it atomically with the
log and the registry; :meth:`CompletionStore.store_completion` is there for
apps that record a result some other way.
"""

from __future__ import annotations

import json

from redis.client import Pipeline
from redis.typing import EncodableT, FieldT

from .keys import Keys
from .models import CompletionData
from .redisutil import RedisClient, hash_to_text


class CompletionStore:
    """Stores and reads terminal events, each expiring after the completion TTL."""

    def __init__(self, redis: RedisClient, keys: Keys, *, ttl: int) -> None:
        self.redis = redis
        self.keys = keys
        self.ttl = ttl

    def store_completion(
        self, data: CompletionData, pipeline: Pipeline | None = None
    ) -> None:
        """Store (or replace) a stream's terminal event, expiring after the TTL.

        Written in one transaction; with ``pipeline`` the commands are only
        queued on it.
        """
        key = self.keys.completion(data.stream_id)
        fields: dict[FieldT, EncodableT] = {
            "streamId": data.stream_id,
            "terminalEventType": data.terminal_event_type,
            "terminalEventData": json.dumps(data.terminal_event_data),
            "completedAt": int(data.completed_at.timestamp() * 1000),
            "eventId": data.event_id or "",
            "userId": data.user_id or "",
        }
        pipe = pipeline if pipeline is not None else self.redis.pipeline()
        pipe.hset(key, mapping=fields)
        pipe.expire(key, self.ttl)
        if pipeline is None:
            pipe.execute()

    def get_completion(self, stream_id: str) -> CompletionData | None:
        """Return the stream's terminal event, or None if it has none (yet)."""
        raw = hash_to_text(self.redis.hgetall(self.keys.completion(stream_id)))
        return CompletionData.from_hash(raw) if raw else None
