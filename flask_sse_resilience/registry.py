"""The stream registry: one Redis hash per stream plus an index of active ones.

A record holds the fields named in
:class:`~flask_sse_resilience.models.RecordField`: ``streamId``,
``streamType``, ``userId``, ``startedAt``, ``lastHeartbeat``, ``state`` and
``metadata`` (JSON), as in the seed, plus the log position (``seq``,
``lastEventId``) and the producer lease (``producer``). Its writes are scripts
(see :mod:`~flask_sse_resilience.scripts`).
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
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from . import scripts
from .errors import StreamIdTaken, StreamLimitExceeded
from .keys import Keys
from .loops import Deferred
from .models import RecordField, StreamMetadata, StreamState
from .redisutil import UNAVAILABLE, RedisClient, as_text, hash_to_text, wait_for_replica
from .scripts import Added, Scripts


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
        self.scripts = Scripts(redis)

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
        mine = self.keys.user_streams(user_id)
        reserve = scripts.capped_add(
            mine, stream_id, ttl_ms=ttl_ms, limit=self.max_streams_per_user
        )
        counted = Added(self.scripts.run(reserve))
        if counted is Added.FULL and self._forget_ended(user_id):
            counted = Added(self.scripts.run(reserve))
        if counted is Added.FULL:
            raise StreamLimitExceeded()
        register = scripts.register(
            self.keys,
            stream_id,
            stream_type=stream_type,
            user_id=user_id,
            metadata_json=json.dumps(dict(metadata or {})),
            ttl_ms=ttl_ms,
        )
        try:
            created = self.scripts.run(register)
        except UNAVAILABLE:
            # The caller is told it failed: it must not stay counted. (Had
            # the record been written after all, the stream is never produced
            # and the guardian orphans it, uncounting it again, harmlessly.)
            if counted is Added.ADDED and self.deferred is not None:
                self.deferred.run(lambda pipe: pipe.zrem(mine, stream_id))
            raise
        if created:
            wait_for_replica(self.redis, self.keys.stream(stream_id))
        else:
            if counted is Added.ADDED:
                self.redis.zrem(mine, stream_id)
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
            pipe.hget(self.keys.stream(stream_id), RecordField.STATE)
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
        calls = [scripts.heartbeat(self.keys, stream_id) for stream_id in stream_ids]
        return [bool(alive) for alive in self.scripts.run_many(calls)]

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

    def queue_get(self, pipe: Any, stream_id: str) -> None:
        """Queue reading the stream's record (without its connection count)
        on ``pipe``; turn the reply into a record with :meth:`parse`."""
        pipe.hgetall(self.keys.stream(stream_id))

    @staticmethod
    def parse(reply: Any) -> StreamMetadata | None:
        """The record from a :meth:`queue_get` reply, or None if it is gone."""
        return StreamMetadata.from_hash(hash_to_text(reply)) if reply else None

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
        return [
            StreamMetadata.from_hash(hash_to_text(raw), int(connections))
            for raw, connections in zip(replies[0::2], replies[1::2], strict=True)
            if raw
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

    def queue_index_entries(self, pipe: Any) -> None:
        """Queue reading every active-index entry on ``pipe`` (one command per
        shard); turn the replies into ``[(id, last heartbeat ms), ...]`` with
        :meth:`parse_index_entries`."""
        for key in self.keys.active_all():
            pipe.zrange(key, 0, -1, withscores=True)

    @staticmethod
    def parse_index_entries(replies: list[Any]) -> list[tuple[str, int]]:
        """The entries of :meth:`queue_index_entries`' replies."""
        return [(as_text(m), int(s)) for shard in replies for m, s in shard]

    def scan(self, page: int = 1000) -> Iterator[StreamMetadata]:
        """Every record in Redis, active or ended (a ``SCAN`` of the record
        keys, read ``page`` at a time); for operators, not request paths."""
        ids: list[str] = []
        for key in self.redis.scan_iter(match=self.keys.stream_pattern, count=page):
            ids.append(self.keys.stream_id_from_key(as_text(key)))
            if len(ids) >= page:
                yield from self.get_many(ids)
                ids = []
        yield from self.get_many(ids)

    def ttl(self, stream_id: str) -> int:
        """Seconds until the stream's record expires (-2: it is gone)."""
        return int(self.redis.ttl(self.keys.stream(stream_id)))

    def active_ids(self, limit: int) -> list[str]:
        """Up to ``limit`` indexed stream ids, longest without heartbeat first."""
        pipe = self.redis.pipeline(transaction=False)
        for key in self.keys.active_all():
            pipe.zrange(key, 0, limit - 1, withscores=True)
        entries = [(s, as_text(m)) for shard in pipe.execute() for m, s in shard]
        return [stream_id for _, stream_id in sorted(entries)[:limit]]
