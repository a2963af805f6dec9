"""The stream registry: one Redis hash per stream plus an index of active ones.

A record holds the fields named in
:class:`~flask_sse_resilience.models.RecordField`: ``streamId``,
``streamType``, ``userId``, ``startedAt``, ``lastHeartbeat``, ``state`` and
``metadata`` (JSON), as in the seed, plus the log position (``seq``,
``lastEventId``) and the producer lease (``producer``). Its writes are scripts
(see :mod:`~flask_sse_resilience.store.scripts`).
The live connection count is the size of the stream's lease set (see
:mod:`~flask_sse_resilience.store.leases`), read with the record. The active index
is a sorted set of stream ids scored by last heartbeat in milliseconds, split
into shards that share their streams' cluster slots (see
:mod:`flask_sse_resilience.store.keys`).

Every timestamp comes from the Redis server clock (``TIME`` inside a script),
so app hosts with skewed clocks agree on what is stale. Every write is one round
trip (registration two: the user's open-stream count lives in the user's own
cluster slot), and no write re-creates a record that has expired (the seed's
``EXISTS``-then-write could resurrect a record without a TTL).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple

from ..errors import StreamIdTaken, StreamKeyTaken, StreamLimitExceeded
from ..ids import new_stream_id
from ..models import (
    OnConflict,
    RecordField,
    Retention,
    StreamId,
    StreamMetadata,
    StreamState,
)
from ..redisio.commands import (
    RedisClient,
    as_text,
    hash_to_text,
    run_pipeline,
    wait_for_replica,
)
from ..redisio.failures import UNAVAILABLE
from ..redisio.loops import Deferred
from . import scripts
from .keys import Keys
from .scripts import Added, Beat, Scripts, Status

#: Keyed opens that lost a race to another open of the same key, retried
#: this many times before giving up with :class:`StreamKeyTaken`.
_KEY_ATTEMPTS = 32


def _ms(seconds: float | None) -> int | None:
    return int(seconds * 1000) if seconds else None


class Seen(NamedTuple):
    """What :meth:`StreamRegistry.queue_state` reads of a record that exists."""

    state: StreamState
    #: Sequence number of its last logged event (its terminal one, once ended).
    seq: int
    #: Its ``startedAt`` (ms, as stored): a record made again under the same
    #: id has another.
    started: str


class StreamRegistry:
    """Registers streams, keeps them alive, and answers what is active or stale."""

    def __init__(
        self,
        redis: RedisClient,
        keys: Keys,
        *,
        stream_ttl: int,
        completion_ttl: int = 300,
        max_streams_per_user: int = 100,
        deferred: Deferred | None = None,
    ) -> None:
        self.redis = redis
        self.deferred = deferred
        self.keys = keys
        self.stream_ttl = stream_ttl
        self.completion_ttl = completion_ttl
        self.max_streams_per_user = max_streams_per_user
        self.scripts = Scripts(redis)

    def register(
        self,
        stream_id: str | None,
        *,
        user_id: str,
        stream_type: str,
        metadata: Mapping[str, Any] | None = None,
        key: str | None = None,
        on_conflict: OnConflict = "reject",
        retention: Retention | None = None,
        supersede: Callable[[str], object] | None = None,
    ) -> StreamId:
        """Create an active stream record that expires after the stream TTL;
        return its id (made here when ``stream_id`` is None).

        With ``key``, the owner has at most one active stream with that key,
        atomically: an active one is kept and its id returned (``join``), or
        ended by ``supersede`` before this one is made (``cancel``), or the
        open is refused (``reject``). A keyed stream's id is made here, in
        the key's shard, so the check and the write are one script.

        :raises StreamIdTaken: if a stream with this id exists; it is untouched.
        :raises StreamKeyTaken: (``reject``) the key's active stream.
        :raises StreamLimitExceeded: if the user already has
            ``max_streams_per_user`` active streams.
        """
        retention = retention or Retention()
        if key is not None:
            stream_id = self._id_in(self.keys.key_shard(user_id, key))
        elif stream_id is None:
            stream_id = new_stream_id()
        ttl_ms = (retention.ttl or self.stream_ttl) * 1000
        # The user's count and the record live in different cluster slots, so
        # they are two scripts: count first, and uncount if nothing was made.
        mine = self.keys.user_streams(user_id)
        reserve = scripts.capped_add(
            mine, stream_id, ttl_ms=ttl_ms, limit=self.max_streams_per_user
        )
        counted = self.scripts.run(reserve)
        if counted is Added.FULL and self._forget_ended(user_id):
            counted = self.scripts.run(reserve)
        if counted is Added.FULL:
            raise StreamLimitExceeded()

        def call(expected: str) -> scripts.Call[scripts.Registered]:
            abandon = retention.cancel_when_abandoned
            return scripts.register(
                self.keys,
                stream_id,
                stream_type=stream_type,
                user_id=user_id,
                metadata_json=json.dumps(dict(metadata or {})),
                ttl_ms=ttl_ms,
                key=key or "",
                expected=expected,
                max_events=retention.max_events,
                completion_ttl_ms=_ms(retention.completion_ttl),
                abandon_ms=_ms(abandon),
                # A key finds its stream as long as the stream may live.
                pointer_ttl_ms=ttl_ms
                + 1000 * (retention.completion_ttl or self.completion_ttl),
            )

        try:
            made = self._create(call, on_conflict, supersede)
        except UNAVAILABLE:
            # The caller is told it failed: it must not stay counted. (Had
            # the record been written after all, the stream is never produced
            # and the guardian orphans it, uncounting it again, harmlessly.)
            if counted is Added.ADDED and self.deferred is not None:
                self.deferred.run(lambda pipe: pipe.zrem(mine, stream_id))
            raise
        except (StreamIdTaken, StreamKeyTaken):
            if counted is Added.ADDED:
                self.redis.zrem(mine, stream_id)
            raise
        if made is None:
            wait_for_replica(self.redis, self.keys.stream(stream_id))
            return StreamId(stream_id)
        if counted is Added.ADDED:  # joined another stream
            self.redis.zrem(mine, stream_id)
        return StreamId(made, joined=True)

    def _create(
        self,
        call: Callable[[str], scripts.Call[scripts.Registered]],
        on_conflict: OnConflict,
        supersede: Callable[[str], object] | None,
    ) -> str | None:
        """Run the register script until it creates the record (None) or a
        keyed stream is joined (its id); see :meth:`register`."""
        expected = ""
        for attempt in range(_KEY_ATTEMPTS):
            reply = self.scripts.run(call(expected))
            if reply.status is Status.WRITTEN:
                return None
            if reply.status is Status.DUPLICATE:
                raise StreamIdTaken()
            assert reply.status is Status.KEY_TAKEN
            current = reply.holder
            if reply.holder_active:
                if on_conflict == "join":
                    return current
                # Never end a stream without trying to open ours after it:
                # give up only before superseding, so one always stays active.
                last = attempt == _KEY_ATTEMPTS - 1
                if on_conflict == "reject" or supersede is None or last:
                    raise StreamKeyTaken(current)
                supersede(current)
            expected = current  # ask again, about the stream the key names now
        raise StreamKeyTaken(expected)

    def _id_in(self, shard: int) -> str:
        """A fresh stream id whose keys land in ``shard`` (about ``shards``
        tries: microseconds)."""
        while True:
            stream_id = new_stream_id()
            if self.keys.shard(stream_id) == shard:
                return stream_id

    def key_holder(self, user_id: str, key: str) -> str | None:
        """The id of the latest stream ``user_id`` opened with ``key`` (active
        or not, possibly expired since), or None."""
        found = self.redis.get(self.keys.key_pointer(user_id, key))
        return as_text(found) if found else None

    def _forget_ended(self, user_id: str) -> int:
        """Drop a user's streams that ended from their count; return how many.

        Ended streams stay counted until the user hits the limit: only then is
        it worth one pipelined look at their states.
        """
        key = self.keys.user_streams(user_id)
        members = [as_text(m) for m in self.redis.zrange(key, 0, -1)]

        def states(pipe: Any) -> None:
            for stream_id in members:
                pipe.hget(self.keys.stream(stream_id), RecordField.STATE)

        ended = [
            stream_id
            for stream_id, state in zip(
                members, run_pipeline(self.redis, states), strict=True
            )
            if state is None or as_text(state) != StreamState.ACTIVE.value
        ]
        if ended:
            self.redis.zrem(key, *ended)
        return len(ended)

    def heartbeat(self, stream_ids: Iterable[str]) -> list[Beat]:
        """Refresh the heartbeat of every active stream given, in one round trip.

        Returns, per id, :class:`~flask_sse_resilience.store.scripts.Beat`:
        ``ALIVE``, ``CANCELLING`` (a cancel was asked for, or it ended
        cancelled: the producer's slow path to the request) or ``ENDED``
        (gone or ended; dropped from the active index).
        """
        calls = [scripts.heartbeat(self.keys, stream_id) for stream_id in stream_ids]
        return self.scripts.run_many(calls)

    def unregister(self, stream_id: str) -> bool:
        """Delete a stream entirely (record, log, completion, index entry).

        Returns whether the record existed.
        """

        def delete(pipe: Any) -> None:
            pipe.delete(self.keys.stream(stream_id))
            pipe.delete(
                self.keys.log(stream_id),
                self.keys.completion(stream_id),
                self.keys.stream_connections(stream_id),
            )
            pipe.zrem(self.keys.active_of(stream_id), stream_id)

        return bool(run_pipeline(self.redis, delete)[0])

    def get(self, stream_id: str) -> StreamMetadata | None:
        """Return the stream's record, or None if it never existed or expired."""
        found = self.get_many([stream_id])
        return found[0] if found else None

    def queue_get(self, pipe: Any, stream_id: str) -> None:
        """Queue reading the stream's record (without its connection count)
        on ``pipe``; turn the reply into a record with :meth:`parse`."""
        pipe.hgetall(self.keys.stream(stream_id))

    @staticmethod
    def parse(reply: Any, connections: Any = 0) -> StreamMetadata | None:
        """The record from a :meth:`queue_get` reply (with its live
        ``connections`` count if known), or None if it is gone."""
        if not reply:
            return None
        return StreamMetadata.from_hash(hash_to_text(reply), int(connections))

    def queue_state(self, pipe: Any, stream_id: str) -> None:
        """Queue reading the stream's state, last sequence number and start on
        ``pipe`` (one ``HMGET``); turn the reply into a :class:`Seen` with
        :meth:`parse_state`."""
        f = RecordField
        pipe.hmget(self.keys.stream(stream_id), f.STATE, f.SEQ, f.STARTED_AT)

    @staticmethod
    def parse_state(reply: Any) -> Seen | None:
        """The :class:`Seen` of a :meth:`queue_state` reply, or None if the
        record is gone."""
        state, seq, started = reply
        if state is None:
            return None
        return Seen(StreamState(as_text(state)), int(seq or 0), as_text(started or ""))

    def queue_expiry(self, pipe: Any, stream_id: str) -> None:
        """Queue reading how long the stream's record lives on ``pipe``
        (``PTTL``); turn the reply into a time with :meth:`parse_expiry`."""
        pipe.pttl(self.keys.stream(stream_id))

    @staticmethod
    def parse_expiry(reply: Any, sent: float) -> float | None:
        """When the record expires, by ``time.monotonic()``, from a
        :meth:`queue_expiry` reply to a pipeline sent at ``sent`` (no later
        than that: the reply came after); None without an expiry, or gone."""
        ms = int(reply)
        return sent + ms / 1000 if ms >= 0 else None

    def get_many(self, stream_ids: Iterable[str]) -> list[StreamMetadata]:
        """Return the records of the given streams that still exist, with
        their live connection counts, in one round trip, in the order given."""
        ids = list(stream_ids)
        if not ids:
            return []

        def read(pipe: Any) -> None:
            for stream_id in ids:
                self.queue_get(pipe, stream_id)
                pipe.zcard(self.keys.stream_connections(stream_id))

        replies = run_pipeline(self.redis, read)
        parsed = map(self.parse, replies[0::2], replies[1::2])
        return [record for record in parsed if record is not None]

    def index(self) -> tuple[int, list[tuple[str, int]]]:
        """Return the number of indexed streams and, per shard, its oldest
        entry as ``(id, last heartbeat in ms)``: one pipeline over the shards."""

        def read(pipe: Any) -> None:
            for key in self.keys.active_all():
                pipe.zcard(key)
                pipe.zrange(key, 0, 0, withscores=True)

        replies = run_pipeline(self.redis, read)
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

        def read(pipe: Any) -> None:
            for key in self.keys.active_all():
                pipe.zrange(key, 0, limit - 1, withscores=True)

        shards = run_pipeline(self.redis, read)
        entries = [(s, as_text(m)) for shard in shards for m, s in shard]
        return [stream_id for _, stream_id in sorted(entries)[:limit]]
