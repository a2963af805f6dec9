"""The stream registry: one Redis hash per stream plus an index of active ones.

A record holds ``streamId``, ``streamType``, ``userId``, ``startedAt``,
``lastHeartbeat``, ``state`` and ``metadata`` (JSON), as in the seed, plus the
log position (``seq``, ``lastEventId``) and the producer lease (``producer``).
The live connection count is the size of the stream's lease set (see
:mod:`~flask_sse_resilience.leases`), read with the record. The active index
is a sorted set of stream ids scored by last heartbeat in milliseconds, split
into shards that share their streams' cluster slots (see
:mod:`flask_sse_resilience.keys`).

Every timestamp comes from the Redis server clock (``TIME`` inside a script),
so app hosts with skewed clocks agree on what is stale. Every write is one round
trip (registration two: the user's open-stream count lives in the user's own
cluster slot), and no write re-creates a record that has expired (the seed's
``EXISTS``-then-write could resurrect a record without a TTL).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import StreamIdTaken, StreamLimitExceeded
from .keys import Keys
from .loops import Deferred
from .models import StreamMetadata, StreamState
from .redisutil import (
    LUA_NOW,
    UNAVAILABLE,
    RedisClient,
    as_text,
    hash_to_text,
    script,
    wait_for_replica,
)

# KEYS: user's streams. ARGV: id, ttl_ms, limit. Counts a new stream against
# the user's limit: -1 at the limit, 1 counted, 0 counted already (same id).
_RESERVE = (
    LUA_NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + ARGV[2], ARGV[1])
  return 0
end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return -1 end
redis.call('ZADD', KEYS[1], now + ARGV[2], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
)

# KEYS: record, active. ARGV: id, type, user, metadata, ttl_ms.
# Returns 0 if the id is taken (nothing written).
_REGISTER = (
    LUA_NOW
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'streamId', ARGV[1], 'streamType', ARGV[2],
  'userId', ARGV[3], 'metadata', ARGV[4], 'state', 'active', 'startedAt', now,
  'lastHeartbeat', now, 'seq', 0)
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

# KEYS: one shard of the active index. ARGV: threshold_ms. Ids whose heartbeat
# is older than that.
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


class StreamRegistry:
    """Registers streams, keeps them alive, and answers what is active or stale."""

    def __init__(
        self,
        redis: RedisClient,
        keys: Keys,
        *,
        stream_ttl: int,
        max_streams_per_user: int = 100,
        deferred: Deferred | None = None,
    ) -> None:
        self.redis = redis
        self.deferred = deferred
        self.keys = keys
        self.stream_ttl = stream_ttl
        self.max_streams_per_user = max_streams_per_user
        self._reserve = script(redis, _RESERVE)
        self._register = script(redis, _REGISTER)
        self._heartbeat = script(redis, _HEARTBEAT)
        self._stale_ids = script(redis, _STALE_IDS)
        self._update_state = script(redis, _UPDATE_STATE)

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
        ttl_ms = self.stream_ttl * 1000
        # The user's count and the record live in different cluster slots, so
        # they are two scripts: count first, and uncount if the id is taken.
        mine = [self.keys.user_streams(user_id)]
        limit = [stream_id, ttl_ms, self.max_streams_per_user]
        counted = self._reserve(keys=mine, args=limit)
        if counted == -1 and self._forget_ended(user_id):
            counted = self._reserve(keys=mine, args=limit)
        if counted == -1:
            raise StreamLimitExceeded()
        try:
            created = self._register(
                keys=[self.keys.stream(stream_id), self.keys.active_of(stream_id)],
                args=[
                    stream_id,
                    stream_type,
                    user_id,
                    json.dumps(dict(metadata or {})),
                    ttl_ms,
                ],
            )
        except UNAVAILABLE:
            # The caller is told it failed: it must not stay counted. (Had
            # the record been written after all, the stream is never produced
            # and the guardian orphans it, uncounting it again, harmlessly.)
            if counted == 1 and self.deferred is not None:
                self.deferred.run(lambda pipe: pipe.zrem(mine[0], stream_id))
            raise
        if created:
            wait_for_replica(self.redis, self.keys.stream(stream_id))
        else:
            if counted == 1:
                self.redis.zrem(mine[0], stream_id)
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
            ([self.keys.stream(stream_id), self.keys.active_of(stream_id)], [stream_id])
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
        pipe.delete(
            self.keys.log(stream_id),
            self.keys.completion(stream_id),
            self.keys.stream_connections(stream_id),
        )
        pipe.zrem(self.keys.active_of(stream_id), stream_id)
        return bool(pipe.execute()[0])

    def get(self, stream_id: str) -> StreamMetadata | None:
        """Return the stream's record, or None if it never existed or expired."""
        found = self.get_many([stream_id])
        return found[0] if found else None

    def get_many(self, stream_ids: Iterable[str]) -> list[StreamMetadata]:
        """Return the records of the given streams that still exist, with
        their live connection counts, in one round trip, in the order given."""
        ids = list(stream_ids)
        if not ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for stream_id in ids:
            pipe.hgetall(self.keys.stream(stream_id))
            pipe.zcard(self.keys.stream_connections(stream_id))
        replies = pipe.execute()
        records = []
        for raw, connections in zip(replies[0::2], replies[1::2], strict=True):
            if raw:
                record = hash_to_text(raw)
                record["connections"] = str(connections)
                records.append(StreamMetadata.from_hash(record))
        return records

    def stale_streams(self, threshold: float) -> list[StreamMetadata]:
        """Return active streams whose last heartbeat is older than ``threshold``
        seconds by the Redis clock.

        Two round trips whatever the number of streams: the index lookup (one
        pipeline over every shard), then one pipeline reading every candidate.
        """
        threshold_ms = int(threshold * 1000)
        shards = self._stale_ids.run_batch(
            [([key], [threshold_ms]) for key in self.keys.active_all()]
        )
        ids = [as_text(member) for members in shards for member in members]
        return [
            record
            for record in self.get_many(ids)
            if record.state is StreamState.ACTIVE
        ]

    def index(self) -> tuple[int, list[tuple[str, int]]]:
        """Return the number of indexed streams and, per shard, its oldest
        entry as ``(id, last heartbeat in ms)``: one pipeline over the shards."""
        pipe = self.redis.pipeline(transaction=False)
        for key in self.keys.active_all():
            pipe.zcard(key)
            pipe.zrange(key, 0, 0, withscores=True)
        replies = pipe.execute()
        count = sum(int(n) for n in replies[0::2])
        oldest = [(as_text(m), int(s)) for first in replies[1::2] for m, s in first]
        return count, oldest

    def active_ids(self, limit: int) -> list[str]:
        """Up to ``limit`` indexed stream ids, longest without heartbeat first."""
        pipe = self.redis.pipeline(transaction=False)
        for key in self.keys.active_all():
            pipe.zrange(key, 0, limit - 1, withscores=True)
        entries = [(s, as_text(m)) for shard in pipe.execute() for m, s in shard]
        return [stream_id for _, stream_id in sorted(entries)[:limit]]

    def update_state(self, stream_id: str, state: StreamState) -> bool:
        """Set a stream's state; an ended state also leaves the active index.

        Returns False (and writes nothing) if the stream does not exist.
        """
        return bool(
            self._update_state(
                keys=[self.keys.stream(stream_id), self.keys.active_of(stream_id)],
                args=[stream_id, state.value],
            )
        )
