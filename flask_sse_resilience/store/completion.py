"""The completion store: each finished stream's terminal event, kept for a while.

Only the terminal write (:meth:`EventLog.finish
<flask_sse_resilience.store.eventlog.EventLog.finish>`, by a producer or the
guardian) fills it, atomically with the log, the record and the active index;
the hash's fields are :class:`~flask_sse_resilience.models.CompletionField`.
This module reads it.
"""

from __future__ import annotations

from typing import Any

from ..models import CompletionData
from ..redisio.commands import RedisClient, hash_to_text
from .keys import Keys


class CompletionStore:
    """Reads terminal events, each kept for the completion TTL."""

    def __init__(self, redis: RedisClient, keys: Keys, *, ttl: int) -> None:
        self.redis = redis
        self.keys = keys
        self.ttl = ttl

    def get_completion(self, stream_id: str) -> CompletionData | None:
        """Return the stream's terminal event, or None if it has none (yet)."""
        return self.parse(self.redis.hgetall(self.keys.completion(stream_id)))

    def queue_get(self, pipe: Any, stream_id: str) -> None:
        """Queue reading the stream's terminal event on ``pipe``; turn the
        reply into a completion with :meth:`parse`."""
        pipe.hgetall(self.keys.completion(stream_id))

    @staticmethod
    def parse(reply: Any) -> CompletionData | None:
        """The completion from a :meth:`queue_get` reply, or None."""
        raw = hash_to_text(reply)
        return CompletionData.from_hash(raw) if raw else None
