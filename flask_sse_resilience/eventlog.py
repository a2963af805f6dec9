"""The per-stream event log (a capped Redis Stream) and its writes.

Writes go through Lua scripts so each is one atomic round trip:

* :meth:`EventLog.claim` gives a producer the stream's write lease (a token in
  the record) and the current sequence number. A later claim takes the lease
  over; the earlier producer's next write fails loudly instead of interleaving.
* :meth:`EventLog.append` logs one event and publishes it. The producer numbers
  its events; a number already logged is acknowledged without writing, so a
  command redis-py retries after a timeout never doubles an event.
* :meth:`EventLog.finish` writes the terminal event together with the completion
  record, the registry state, the removal from the active index and the expiry
  of all the stream's keys: all of it or none of it.

The log expires with its record. Once a stream ends, its record, log and
completion all expire after the completion TTL, so the log lives exactly as long
as the completion record.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from .errors import LogBehindError, ProducerConflictError, StreamNotActiveError
from .keys import Keys
from .loops import Deferred
from .models import Event, StreamState
from .redisutil import (
    LUA_NOW,
    RedisClient,
    as_text,
    hash_to_text,
    is_cluster,
    script,
    wait_for_replica,
)

log = logging.getLogger(__name__)

# KEYS: record, active. ARGV: id, token. Returns the current seq, -1 when the
# stream has ended, -2 when it does not exist.
_CLAIM = (
    LUA_NOW
    + """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return -2 end
if state ~= 'active' then return -1 end
redis.call('HSET', KEYS[1], 'producer', ARGV[2], 'lastHeartbeat', now)
redis.call('ZADD', KEYS[2], now, ARGV[1])
return tonumber(redis.call('HGET', KEYS[1], 'seq'))
"""
)

# Shared checks. Status codes: 1 written, 0 already written (a retry),
# -1 ended, -2 missing, -3 another producer holds the lease, -4 out of order,
# -5 (guardian) no longer stale. The guardian (empty token) instead ends only a
# stream that is still active and still stale, and drops from the active index
# what is gone or ended, telling followers of a vanished stream it is over.
_CHECK = """
local rec = redis.call('HMGET', KEYS[1], 'state', 'producer', 'seq', 'lastEventId',
  'userId', 'lastHeartbeat')
local seq = tonumber(ARGV[2])
if ARGV[1] == '' then
  if not rec[1] then
    if redis.call('ZREM', KEYS[4], ARGV[10]) == 1 then
      redis.call('PUBLISH', ARGV[6], '\\n0\\nfailed\\n{"reason":"expired"}')
    end
    return {-2}
  end
  if rec[1] ~= 'active' then
    redis.call('ZREM', KEYS[4], ARGV[10])
    return {-1}
  end
  local beat = tonumber(rec[6])
  if KEYS[5] then  -- the shard's watch: a heartbeat is no older than its grace
    beat = math.max(beat, tonumber(redis.call('HGET', KEYS[5], 'since') or 0))
  end
  if now - beat <= tonumber(ARGV[8]) then return {-5} end
  seq = tonumber(rec[3]) + 1
else
  if not rec[1] then return {-2} end
  local cur = tonumber(rec[3])
  if rec[2] ~= ARGV[1] then return {-3} end
  if seq <= cur then return {0, rec[4], rec[5]} end
  if rec[1] ~= 'active' then return {-1} end
  if seq ~= cur + 1 then return {-4, cur} end
end
"""

_PUBLISH = """
redis.call('PUBLISH', ARGV[6],
  id .. '\\n' .. seq .. '\\n' .. ARGV[3] .. '\\n' .. ARGV[4])
"""

# KEYS: record, log. ARGV: token, seq, type, data, maxlen, channel.
_APPEND = (
    _CHECK
    + """
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*',
  'seq', seq, 'type', ARGV[3], 'data', ARGV[4])
redis.call('HSET', KEYS[1], 'seq', seq, 'lastEventId', id)
redis.call('PEXPIRE', KEYS[2], redis.call('PTTL', KEYS[1]))
"""
    + _PUBLISH
    + "return {1, id}\n"
)

# KEYS: record, log, completion, active (and, for the guardian, the shard's
# watch, unless forced).
# ARGV: token ('' for the guardian), seq, type, data, maxlen, channel,
#       completion_ttl_ms, stale_ms, state, stream id.
_FINISH = (
    LUA_NOW
    + _CHECK
    + """
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*',
  'seq', seq, 'type', ARGV[3], 'data', ARGV[4])
redis.call('HSET', KEYS[1], 'seq', seq, 'lastEventId', id, 'state', ARGV[9],
  'endedAt', now)
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[3], 'streamId', ARGV[10], 'terminalEventType', ARGV[3],
  'terminalEventData', ARGV[4], 'completedAt', now, 'eventId', id,
  'userId', rec[5])
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[7]) end
redis.call('ZREM', KEYS[4], ARGV[10])
"""
    + _PUBLISH
    + "return {1, id, rec[5]}\n"
)


def _raise_for(status: int, stream_id: str, reply: Any = None) -> None:
    if status == -3:
        raise ProducerConflictError(
            f"another producer has taken over stream {stream_id!r}"
        )
    if status == -4:
        logged = int(reply[1])
        raise LogBehindError(
            f"the log of stream {stream_id!r} ends at event {logged}, before "
            "events this producer wrote: Redis lost acknowledged writes",
            logged,
        )
    if status in (-1, -2, -5):
        raise StreamNotActiveError(
            f"stream {stream_id!r} "
            + ("does not exist" if status == -2 else "is not active")
        )


def parse_entry(entry_id: Any, fields: Any) -> Event:
    """Build an :class:`Event` from one ``XRANGE`` entry."""
    values = hash_to_text(fields)
    return Event(
        id=as_text(entry_id),
        seq=int(values["seq"]),
        type=values["type"],
        data_json=values["data"],
    )


def parse_message(payload: Any) -> Event:
    """Build an :class:`Event` from a pub/sub announcement (see ``_PUBLISH``).

    An announcement without an id is an end notice for a stream that vanished
    (its record expired): it is not in the log, and ends every follower.
    """
    event_id, seq, event_type, data = as_text(payload).split("\n", 3)
    return Event(id=event_id or None, seq=int(seq), type=event_type, data_json=data)


class EventLog:
    """Reads and writes the event logs of streams."""

    def __init__(
        self,
        redis: RedisClient,
        keys: Keys,
        *,
        max_events: int,
        completion_ttl: int,
        deferred: Deferred | None = None,
    ) -> None:
        self.redis = redis
        self.deferred = deferred or Deferred(redis)
        self.keys = keys
        self.max_events = max_events
        self.completion_ttl = completion_ttl
        self._claim = script(redis, _CLAIM)
        # A cluster announces on sharded channels (SPUBLISH), which live in
        # the stream's own slot like its keys, so the scripts stay on one node.
        publish = "'SPUBLISH'" if is_cluster(redis) else "'PUBLISH'"
        self._append = script(redis, _APPEND.replace("'PUBLISH'", publish))
        self._finish = script(redis, _FINISH.replace("'PUBLISH'", publish))

    def claim(self, stream_id: str, token: str) -> int:
        """Take the write lease of an active stream; return its current seq.

        Also refreshes the stream's heartbeat.

        :raises StreamNotActiveError: if the stream is missing or has ended.
        """
        seq = int(
            self._claim(
                keys=[self.keys.stream(stream_id), self.keys.active_of(stream_id)],
                args=[stream_id, token],
            )
        )
        _raise_for(seq, stream_id)
        return seq

    def append(
        self, stream_id: str, token: str, seq: int, event_type: str, data_json: str
    ) -> str:
        """Log event number ``seq`` and announce it; return its log id.

        Appending a ``seq`` already logged writes nothing (idempotent retry).

        :raises StreamNotActiveError: if the stream is missing or has ended.
        :raises ProducerConflictError: if another producer holds the lease.
        """
        if not token:
            raise ValueError("a producer token is required")
        reply = self._append(
            keys=[self.keys.stream(stream_id), self.keys.log(stream_id)],
            args=[
                token,
                seq,
                event_type,
                data_json,
                self.max_events,
                self.keys.channel(stream_id),
            ],
        )
        _raise_for(int(reply[0]), stream_id, reply)
        return as_text(reply[1]) if len(reply) > 1 else ""

    def finish(
        self,
        stream_id: str,
        *,
        state: StreamState,
        event_type: str,
        data_json: str,
        token: str = "",
        seq: int = 0,
        stale_ms: int = 0,
    ) -> str:
        """Write the terminal event and everything that goes with it, atomically.

        With a producer ``token`` the usual lease and sequence checks apply and a
        retried call is acknowledged without writing. Without one (the guardian),
        the stream is ended only if it is still active and its heartbeat is older
        than ``stale_ms``: a compare-and-set, so a stream that heartbeated or
        finished meanwhile is left alone.

        :returns: the terminal event's log id.
        :raises StreamNotActiveError: if the stream is missing, has ended, or
            (guardian) is no longer stale.
        :raises ProducerConflictError: if another producer holds the lease.
        """
        keys, args = self._finish_call(
            stream_id, state, event_type, data_json, token, seq, stale_ms
        )
        reply = self._finish(keys=keys, args=args)
        _raise_for(int(reply[0]), stream_id, reply)
        if len(reply) > 2:  # ended (now, or by a retried call): uncount, idempotently
            self._uncount([(stream_id, as_text(reply[2]))])
        return as_text(reply[1])

    def wait_replicated(self, stream_id: str) -> int:
        """Wait until a replica has the stream's writes so far; see
        :func:`~flask_sse_resilience.redisutil.wait_for_replica`."""
        return wait_for_replica(self.redis, self.keys.stream(stream_id))

    def _uncount(self, ended: list[tuple[str, str]]) -> None:
        """Drop ended streams from their users' open-stream counts. The counts
        live in the users' cluster slots, not the streams': a separate write,
        retried until it lands if Redis is unavailable."""

        def build(pipe: Any) -> None:
            for stream_id, user_id in ended:
                pipe.zrem(self.keys.user_streams(user_id), stream_id)

        self.deferred.run(build)

    def orphan_many(
        self, stream_ids: list[str], *, stale_ms: int, data: str, grace: bool = True
    ) -> list[int]:
        """End each still-active, still-stale stream as ``orphaned``, in one
        pipelined round trip; the guardian's write. With ``grace``, a stream
        whose shard is in its grace after an outage is not stale yet (see
        :mod:`~flask_sse_resilience.guardian`).

        Returns a status per id: 1 orphaned now, -5 no longer stale (left
        alone), -1 already ended and -2 expired (both dropped from the active
        index; followers of an expired stream are told it is over).
        """
        calls = []
        for stream_id in stream_ids:
            keys, args = self._finish_call(
                stream_id, StreamState.ORPHANED, "failed", data, "", 0, stale_ms
            )
            if grace:
                keys.append(self.keys.watch_of(stream_id))
            calls.append((keys, args))
        if not calls:
            return []
        replies = self._finish.run_batch(calls)
        ended = [
            (stream_id, as_text(reply[2]))
            for stream_id, reply in zip(stream_ids, replies, strict=True)
            if int(reply[0]) == 1
        ]
        if ended:
            self._uncount(ended)
        return [int(reply[0]) for reply in replies]

    def _finish_call(
        self,
        stream_id: str,
        state: StreamState,
        event_type: str,
        data_json: str,
        token: str,
        seq: int,
        stale_ms: int,
    ) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of one call of the terminal-write script."""
        keys = [
            self.keys.stream(stream_id),
            self.keys.log(stream_id),
            self.keys.completion(stream_id),
            self.keys.active_of(stream_id),
        ]
        args = [
            token, seq, event_type, data_json, self.max_events,
            self.keys.channel(stream_id), self.completion_ttl * 1000, stale_ms,
            state.value, stream_id,
        ]  # fmt: skip
        return keys, args

    def read(self, stream_id: str, after: str | None, count: int = 500) -> list[Event]:
        """Return up to ``count`` logged events after log id ``after`` (exclusive),
        or from the start of the log when ``after`` is None."""
        return self.read_from(stream_id, "-" if after is None else f"({after}", count)

    def read_from(self, stream_id: str, start: str, count: int = 500) -> list[Event]:
        """Return up to ``count`` logged events from log id ``start`` (inclusive;
        ``-`` is the start of the log, a ``(`` prefix makes it exclusive)."""
        entries = self.redis.xrange(self.keys.log(stream_id), start, "+", count=count)
        return self.parse_entries(entries)

    def queue_read_from(
        self, pipe: Any, stream_id: str, start: str, count: int
    ) -> None:
        """Queue :meth:`read_from` on ``pipe``; turn its reply into events
        with :meth:`parse_entries`."""
        pipe.xrange(self.keys.log(stream_id), start, "+", count=count)

    @staticmethod
    def parse_entries(entries: Any) -> list[Event]:
        """Events from an ``XRANGE`` reply."""
        return [parse_entry(entry_id, fields) for entry_id, fields in entries or ()]

    def iter_after(
        self, stream_id: str, after: str | None, batch: int = 500
    ) -> Iterator[Event]:
        """Yield every logged event after ``after``, reading in batches."""
        while True:
            events = self.read(stream_id, after, batch)
            yield from events
            if len(events) < batch:
                return
            after = events[-1].id
