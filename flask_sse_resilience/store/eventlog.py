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

import dataclasses
import functools
import json
import logging
from collections.abc import Iterator, Sequence
from typing import Any

from ..models import Event, StreamState
from ..redisio.commands import RedisClient, is_sentinel, wait_for_replica
from ..redisio.loops import Deferred
from . import scripts
from .keys import Keys
from .logentries import parse_entry, raise_for
from .scripts import Scripts, Status, Written

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Claim:
    """A producer's write lease: where the log is, and any cancel request
    made before it came (a stop pressed before the job started)."""

    seq: int
    cancel: dict[str, Any] | None = None


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
        cancel_grace: float = 30.0,
    ) -> None:
        self.redis = redis
        self.deferred = deferred or Deferred(redis)
        self.keys = keys
        self.max_events = max_events
        self.completion_ttl = completion_ttl
        self.cancel_grace_ms = int(cancel_grace * 1000)
        self.scripts = Scripts(redis)
        #: :func:`scripts.finish <flask_sse_resilience.store.scripts.finish>` with
        #: this log's keys, cap and completion TTL.
        self._finish_call = functools.partial(
            scripts.finish,
            keys,
            max_events=max_events,
            completion_ttl_ms=completion_ttl * 1000,
        )

    def claim(self, stream_id: str, token: str) -> Claim:
        """Take the write lease of an active stream; return where its log is
        and any pending cancel request.

        Also refreshes the stream's heartbeat.

        :raises StreamCancelled: if the stream has ended cancelled.
        :raises StreamNotActiveError: if the stream is missing or has ended.
        """
        claimed = self.scripts.run_replicated(
            scripts.claim(self.keys, stream_id, token=token)
        )
        if claimed.status is not Status.WRITTEN:
            raise_for(Written(claimed.status), stream_id)
        request = claimed.request_json
        return Claim(claimed.seq, json.loads(request) if request else None)

    def append(
        self, stream_id: str, token: str, seq: int, event_type: str, data_json: str
    ) -> str:
        """Log event number ``seq`` and announce it; return its log id.

        Appending a ``seq`` already logged writes nothing (idempotent retry).

        :raises StreamNotActiveError: if the stream is missing or has ended.
        :raises ProducerConflictError: if another producer holds the lease.
        """
        return self.append_many(stream_id, token, seq, [(event_type, data_json)])

    def append_many(
        self,
        stream_id: str,
        token: str,
        seq: int,
        events: Sequence[tuple[str, str]],
        *,
        cancelling: bool = False,
    ) -> str:
        """Log ``events`` (type and JSON data each) numbered from ``seq``, one
        entry each, and announce them in one message; return the last log id.

        All or nothing: a retried batch (its first number already logged) is
        acknowledged without writing. Once a cancel was asked for, only a
        producer ``cancelling`` (writing what it sent before it ends the
        stream ``cancelled``) still writes.

        :raises StreamCancelled: once a cancel was asked for (nothing written).
        :raises StreamNotActiveError: if the stream is missing or has ended.
        :raises ProducerConflictError: if another producer holds the lease.
        :raises LogBehindError: if the log ends before ``seq - 1``.
        """
        if not token:
            raise ValueError("a producer token is required")
        if not events:
            raise ValueError("no events to append")
        reply = self.scripts.run(
            scripts.append(
                self.keys,
                stream_id,
                token=token,
                seq=seq,
                events=events,
                max_events=self.max_events,
                cancelling=cancelling,
            )
        )
        raise_for(reply, stream_id)
        return reply.event_id

    def snapshot(self, stream_id: str, token: str, seq: int, data_json: str) -> str:
        """Store the producer's snapshot of the stream as of event ``seq``, its
        last logged; return that event's log id ("" before the first).

        :raises StreamNotActiveError: if the stream is missing or has ended.
        :raises ProducerConflictError: if another producer holds the lease.
        :raises LogBehindError: if the log is not at ``seq``.
        """
        reply = self.scripts.run(
            scripts.snapshot(
                self.keys, stream_id, token=token, seq=seq, data_json=data_json
            )
        )
        raise_for(reply, stream_id)
        return reply.event_id

    def queue_read_snapshot(self, pipe: Any, stream_id: str) -> None:
        """Queue the read of the stream's latest snapshot on ``pipe``; turn
        its reply into an event with :func:`parse_snapshot`."""
        pipe.get(self.keys.snapshot(stream_id))

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
        grace_ms: int | None = None,
        request_json: str = "",
    ) -> str:
        """Write the terminal event and everything that goes with it, atomically.

        With a producer ``token`` the usual lease and sequence checks apply and a
        retried call is acknowledged without writing; once a cancel was asked
        for, only ``state`` :attr:`~StreamState.CANCELLED` is written (its data
        is the request, ``request_json`` if there was none, plus ``data_json``
        as ``partial`` unless null). Without a token (the guardian), the
        stream is ended only if it is still active and its heartbeat is older
        than ``stale_ms``, or its cancel request older than ``grace_ms``
        (default: ``cancel_grace``): a compare-and-set, so a stream that
        heartbeated or finished meanwhile is left alone. A stream with a cancel
        request ends ``cancelled`` whoever ends it.

        :returns: the terminal event's log id.
        :raises StreamCancelled: if a cancel was asked for (nothing written).
        :raises StreamNotActiveError: if the stream is missing, has ended, or
            (guardian) is no longer stale.
        :raises ProducerConflictError: if another producer holds the lease.
        """
        call = self._finish_call(
            stream_id, state=state, event_type=event_type, data_json=data_json,
            token=token, seq=seq, stale_ms=stale_ms,
            grace_ms=self.cancel_grace_ms if grace_ms is None else grace_ms,
            request_json=request_json,
        )  # fmt: skip
        # A producer's end must survive a failover (nothing after it would
        # notice its loss); the guardian's is redone by its next sweep.
        run = self.scripts.run_replicated if token else self.scripts.run
        reply = run(call)
        raise_for(reply, stream_id)
        if reply.user_id is not None:  # ended (now, or by a retried call):
            self._uncount([(stream_id, reply.user_id)])  # uncount, idempotently
        return reply.event_id

    def wait_replicated(self, stream_id: str) -> int:
        """On a cluster, wait until a replica has the stream's writes so far
        (see :func:`~flask_sse_resilience.redisio.commands.wait_for_replica`); behind
        Sentinel, :meth:`claim` and :meth:`finish` waited already, on their
        own connection."""
        if is_sentinel(self.redis):
            return 0
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
    ) -> list[tuple[Status, StreamState | None]]:
        """End each still-active stream that is still stale, or whose cancel
        request is older than the cancel grace (fenced), in one pipelined
        round trip; the guardian's write. A stale stream ends ``orphaned``
        (``data``), one with a cancel request ``cancelled``. With ``grace``,
        a stream whose shard is in its grace after an outage is not stale yet
        (see :mod:`~flask_sse_resilience.store.guardian`).

        Returns a status per id, with the state written: ``WRITTEN`` ended
        now, ``NOT_STALE`` (left alone), ``ENDED`` already and ``MISSING``
        expired (both dropped from the active index; followers of an expired
        stream are told it is over).
        """
        calls = [
            self._finish_call(
                stream_id, state=StreamState.ORPHANED, event_type="failed",
                data_json=data, stale_ms=stale_ms, grace_ms=self.cancel_grace_ms,
                watch=grace,
            )
            for stream_id in stream_ids
        ]  # fmt: skip
        replies = self.scripts.run_many(calls)
        results: list[tuple[Status, StreamState | None]] = []
        ended = []
        for stream_id, reply in zip(stream_ids, replies, strict=True):
            results.append((reply.status, reply.state))
            if reply.status is Status.WRITTEN and reply.user_id is not None:
                ended.append((stream_id, reply.user_id))
        if ended:
            self._uncount(ended)
        return results

    def length(self, stream_id: str) -> int:
        """Events the stream's (capped) log holds now."""
        return int(self.redis.xlen(self.keys.log(stream_id)))

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

    def queue_read_last(self, pipe: Any, stream_id: str) -> None:
        """Queue reading the last logged event (``XREVRANGE ... COUNT 1``) on
        ``pipe``; turn the reply into a list of at most one event with
        :meth:`parse_entries`."""
        pipe.xrevrange(self.keys.log(stream_id), "+", "-", count=1)

    @staticmethod
    def parse_entries(entries: Any) -> list[Event]:
        """Events from an ``XRANGE`` reply."""
        return [parse_entry(entry_id, fields) for entry_id, fields in entries or ()]

    def iter_after(
        self, stream_id: str, after: str | None, page: int = 500
    ) -> Iterator[Event]:
        """Yield every logged event after ``after``, reading ``page`` at a time."""
        while True:
            events = self.read(stream_id, after, page)
            yield from events
            if len(events) < page:
                return
            after = events[-1].id
