"""The stream registry: one Redis hash per stream plus an index of active ones.

A record holds ``streamId``, ``streamType``, ``userId``, ``startedAt``,
``lastHeartbeat``, ``state`` and ``metadata`` (JSON), as in the seed, plus the
log position (``seq``, ``lastEventId``), the producer lease (``producer``) and
the live connection count (``connections``). The active index is a sorted set
of stream ids scored by last heartbeat in milliseconds.

Every timestamp comes from the Redis server clock (``TIME`` inside a script),
so app hosts with skewed clocks agree on what is stale. Every write is one round
trip, and no write re-creates a record that has expired (the seed's
``EXISTS``-then-write could resurrect a record without a TTL).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import StreamIdTaken, StreamLimitExceeded
from .keys import Keys
from .models import StreamMetadata, StreamState
from .redisutil import LUA_NOW, RedisClient, as_text, hash_to_text, script

# KEYS: record, active, user's streams.
# ARGV: id, type, user, metadata, ttl_ms, limit.
_REGISTER = (
    LUA_NOW
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[6]) then return -1 end
redis.call('ZADD', KEYS[3], now + ARGV[5], ARGV[1])
redis.call('PEXPIRE', KEYS[3], ARGV[5])
redis.call('HSET', KEYS[1], 'streamId', ARGV[1], 'streamType', ARGV[2],
  'userId', ARGV[3], 'metadata', ARGV[4], 'state', 'active', 'startedAt', now,
  'lastHeartbeat', now, 'seq', 0, 'connections', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('ZADD', KEYS[2], now, ARGV[1])
return now
"""
)

# KEYS: record, active. ARGV: id. Refreshes an active stream; an index entry
# whose record is gone or ended is dropped instead.
_HEARTBEAT = (
    LUA_NOW
    + """
if redis.call('HGET', KEYS[1], 'state') ~= 'active' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 0
end
redis.call('HSET', KEYS[1], 'lastHeartbeat', now)
redis.call('ZADD', KEYS[2], now, ARGV[1])
return 1
"""
)

# KEYS: active. ARGV: threshold_ms. Ids whose heartbeat is older than that.
_STALE_IDS = (
    LUA_NOW
    + """
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - ARGV[1]))
"""
)

# KEYS: record, active. ARGV: id, state.
_UPDATE_STATE = (
    LUA_NOW
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2])
if ARGV[2] ~= 'active' then
  redis.call('HSET', KEYS[1], 'endedAt', now)
  redis.call('ZREM', KEYS[2], ARGV[1])
end
return 1
"""
)

# KEYS: record. ARGV: delta. Never creates the record.
_COUNT_CONNECTION = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
return redis.call('HINCRBY', KEYS[1], 'connections', ARGV[1])
"""


class StreamRegistry:
    """Registers streams, keeps them alive, and answers what is active or stale."""

    def __init__(
        self,
        redis: RedisClient,
        keys: Keys,
        *,
        stream_ttl: int,
        max_streams_per_user: int = 100,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.stream_ttl = stream_ttl
        self.max_streams_per_user = max_streams_per_user
        self._register = script(redis, _REGISTER)
        self._heartbeat = script(redis, _HEARTBEAT)
        self._stale_ids = script(redis, _STALE_IDS)
        self._update_state = script(redis, _UPDATE_STATE)
        self._count_connection = script(redis, _COUNT_CONNECTION)

    def register(
        self,
        stream_id: str,
        *,
        user_id: str,
        stream_type: str,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Create an active stream record that expires after the stream TTL.

        :raises StreamIdTaken: if a stream with this id exists; it is untouched.
        :raises StreamLimitExceeded: if the user already has
            ``max_streams_per_user`` active streams.
        """
        args = [
            stream_id,
            stream_type,
            user_id,
            json.dumps(dict(metadata or {})),
            self.stream_ttl * 1000,
            self.max_streams_per_user,
        ]
        keys = [
            self.keys.stream(stream_id),
            self.keys.active,
            self.keys.user_streams(user_id),
        ]
        created = self._register(keys=keys, args=args)
        if created == -1 and self._forget_ended(user_id):
            created = self._register(keys=keys, args=args)
        if created == -1:
            raise StreamLimitExceeded()
        if not created:
            raise StreamIdTaken()

    def _forget_ended(self, user_id: str) -> int:
        """Drop a user's streams that ended from their count; return how many.

        Ended streams stay counted until the user hits the limit: only then is
        it worth one pipelined look at their states.
        """
        key = self.keys.user_streams(user_id)
        members = [as_text(m) for m in self.redis.zrange(key, 0, -1)]
        pipe = self.redis.pipeline(transaction=False)
        for stream_id in members:
            pipe.hget(self.keys.stream(stream_id), "state")
        ended = [
            stream_id
            for stream_id, state in zip(members, pipe.execute(), strict=True)
            if state is None or as_text(state) != StreamState.ACTIVE.value
        ]
        if ended:
            self.redis.zrem(key, *ended)
        return len(ended)

    def heartbeat(self, stream_ids: Iterable[str]) -> list[bool]:
        """Refresh the heartbeat of every active stream given, in one round trip.

        Returns, per id, whether the stream was still active; an id whose
        record is gone or ended is dropped from the active index instead.
        """
        calls = [
            ([self.keys.stream(stream_id), self.keys.active], [stream_id])
            for stream_id in stream_ids
        ]
        if not calls:
            return []
        return [bool(alive) for alive in self._heartbeat.run_batch(calls)]

    def unregister(self, stream_id: str) -> bool:
        """Delete a stream entirely (record, log, completion, index entry).

        Returns whether the record existed.
        """
        pipe = self.redis.pipeline(transaction=False)
        pipe.delete(self.keys.stream(stream_id))
        pipe.delete(self.keys.log(stream_id), self.keys.completion(stream_id))
        pipe.zrem(self.keys.active, stream_id)
        return bool(pipe.execute()[0])

    def get(self, stream_id: str) -> StreamMetadata | None:
        """Return the stream's record, or None if it never existed or expired."""
        raw = hash_to_text(self.redis.hgetall(self.keys.stream(stream_id)))
        return StreamMetadata.from_hash(raw) if raw else None

    def get_many(self, stream_ids: Iterable[str]) -> list[StreamMetadata]:
        """Return the records of the given streams that still exist, in one round
        trip, in the order given."""
        ids = list(stream_ids)
        if not ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for stream_id in ids:
            pipe.hgetall(self.keys.stream(stream_id))
        raws = [hash_to_text(raw) for raw in pipe.execute()]
        return [StreamMetadata.from_hash(raw) for raw in raws if raw]

    def stale_streams(self, threshold: float) -> list[StreamMetadata]:
        """Return active streams whose last heartbeat is older than ``threshold``
        seconds by the Redis clock.

        Two round trips whatever the number of streams: the index lookup, then
        one pipeline reading every candidate record.
        """
        ids = [
            as_text(member)
            for member in self._stale_ids(
                keys=[self.keys.active], args=[int(threshold * 1000)]
            )
        ]
        return [
            record
            for record in self.get_many(ids)
            if record.state is StreamState.ACTIVE
        ]

    def update_state(self, stream_id: str, state: StreamState) -> bool:
        """Set a stream's state; an ended state also leaves the active index.

        Returns False (and writes nothing) if the stream does not exist.
        """
        return bool(
            self._update_state(
                keys=[self.keys.stream(stream_id), self.keys.active],
                args=[stream_id, state.value],
            )
        )

    def count_connection(self, stream_id: str, delta: int) -> int | None:
        """Add ``delta`` to the stream's live connection count.

        Returns the new count, or None if the record is gone (nothing written).
        """
        result = self._count_connection(
            keys=[self.keys.stream(stream_id)], args=[delta]
        )
        return None if result is None else int(result)

    def queue_count_connection(self, pipe: Any, stream_id: str, delta: int) -> None:
        """Queue :meth:`count_connection` on ``pipe`` (for
        :func:`~flask_sse_resilience.redisutil.run_pipeline`); its reply is
        the new count, or None if the record is gone."""
        self._count_connection.queue(pipe, [self.keys.stream(stream_id)], [delta])
