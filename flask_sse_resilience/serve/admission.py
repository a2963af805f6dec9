"""Admitting a client's stream connection, and what it holds until it closes.

Who owns what:

- :class:`Connections` (one per process) admits: it opens a connection in one
  round trip (the stream's record, terminal event and expiry, and a lease,
  shared with concurrent requests) and takes nothing else.
- A :class:`Lease` (see :mod:`~flask_sse_resilience.store.leases`) counts a
  connection for its user from admission, and for each stream it follows
  from the moment the response follows it. Exactly one owner gives it back,
  once, however the response ends: a single stream's :class:`Connection`,
  or a multiplexed response's :class:`MultiConnection`, whose per-stream
  connections only borrow it.
- :meth:`Connection.decide` is the one admission decision for a connection
  and the client's cursor, for the single and the multiplexed route alike:
  :class:`Serve` from where, or :class:`Refuse` and why. The routes
  (:mod:`~flask_sse_resilience.web.views`,
  :mod:`~flask_sse_resilience.web.multi`) only turn it into HTTP.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import time
from collections.abc import Callable
from typing import Any

from ..ids import parse_event_id
from ..models import CompletionData, StreamMetadata
from ..redisio.loops import Build
from ..store.completion import CompletionStore
from ..store.leases import ConnectionLeases
from ..store.registry import StreamRegistry

#: Runs a pipeline: ``run(build)`` returns the replies of what ``build`` queued.
RunPipeline = Callable[[Build], list[Any]]


def is_ahead(last_event_id: str, newest: str | None) -> bool:
    """True if the client claims an event this stream has not sent yet."""
    if newest is None:
        return True
    return (parse_event_id(last_event_id) or (0, 0)) > (
        parse_event_id(newest) or (0, 0)
    )


@dataclasses.dataclass(frozen=True)
class Serve:
    """Serve the connection: replay what comes after ``last_event_id`` (None:
    from the start, or the latest snapshot; see
    :data:`~flask_sse_resilience.models.StartFrom`), then follow."""

    last_event_id: str | None


class Refuse(enum.Enum):
    """Why an admitted connection is not served."""

    #: The cursor claims an event the live stream has not sent: 400 on its
    #: own, an ``error`` event on a multiplexed response.
    AHEAD = "ahead"
    #: The client holds the stream's terminal event already: 204 on its own
    #: (which stops an ``EventSource``), left out of a multiplexed response.
    HAS_END = "has-end"
    #: A live stream without a lease: the user holds their connection limit
    #: already (429).
    NO_LEASE = "no-lease"


class Lease:
    """A lease held in Redis for one open connection; given back once, by
    whichever object owns it (see the module docstring)."""

    __slots__ = ("_leases", "_run", "id")

    def __init__(self, lease_id: str, leases: ConnectionLeases, run: RunPipeline):
        self.id: str | None = lease_id
        self._leases = leases
        self._run = run

    def queue_join(self, pipe: Any, stream_id: str) -> None:
        """Queue counting the lease's connection for ``stream_id`` on ``pipe``;
        it counts until :meth:`release`."""
        if self.id is not None:
            self._leases.queue_join(pipe, self.id, stream_id)

    def release(self) -> None:
        """Give the lease back, from the user's count and every stream's.
        Idempotent; retried until it lands if Redis is unavailable."""
        lease, self.id = self.id, None
        if lease is not None:
            self._leases.release(lease, self._run)


class Connection:
    """An admitted connection to one stream (see the module docstring)."""

    __slots__ = ("_owns_lease", "completion", "expires_at", "lease", "record",
                 "stream_id")  # fmt: skip

    def __init__(
        self,
        stream_id: str,
        record: StreamMetadata,
        completion: CompletionData | None,
        lease: Lease | None,
        *,
        owns_lease: bool = True,
        expires_at: float | None = None,
    ) -> None:
        self.stream_id = stream_id
        #: The stream's record and terminal event (None while active) as read
        #: on admission, and when the record expires (``time.monotonic()``;
        #: None: never, or not known), which tells an expired stream from a
        #: lost one (see :mod:`~flask_sse_resilience.serve.presence`).
        self.record = record
        self.completion = completion
        self.expires_at = expires_at
        #: The lease held, or None: at the user's limit, or not asked for. A
        #: multiplexed response's streams borrow its lease (``owns_lease``
        #: False): their :meth:`close` leaves it to the response.
        self.lease = lease
        self._owns_lease = owns_lease

    def decide(self, position: str | None) -> Serve | Refuse:
        """The admission decision for a client at ``position`` (its
        ``Last-Event-ID``, or None), in this order:

        - a position ahead of everything the stream has sent: refused
          (:attr:`Refuse.AHEAD`) while the stream is live; once it has ended,
          the client holds events it no longer has (a Redis failover lost
          them) and all it still needs is the end: served from the start;
        - an ended stream whose terminal event the client holds:
          :attr:`Refuse.HAS_END`;
        - a live stream without a lease: :attr:`Refuse.NO_LEASE` (an ended
          stream's short response is served without one at the limit);
        - else :class:`Serve` from the position.
        """
        record = self.record
        ended = record.state.ended
        if position is not None and is_ahead(position, record.last_event_id):
            if not ended:
                return Refuse.AHEAD
            position = None
        if ended and position == record.last_event_id:
            return Refuse.HAS_END
        if not ended and self.lease is None:
            return Refuse.NO_LEASE
        return Serve(position)

    def queue_join(self, pipe: Any) -> None:
        """Queue counting this connection for its stream on ``pipe`` (no-op
        without a lease); it counts until the lease is given back."""
        if self.lease is not None:
            self.lease.queue_join(pipe, self.stream_id)

    def close(self) -> None:
        """Give the lease back if this connection owns it (a multiplexed
        response's streams leave it to the response). Idempotent."""
        if self._owns_lease and self.lease is not None:
            self.lease.release()


class MultiConnection:
    """An admitted multiplexed connection: one :class:`Lease` for the whole
    response (it counts once for its user, and as a follower of each stream
    it serves), and per stream of the request, in order, its
    :class:`Connection` borrowing that lease, or None for a stream that is
    unknown, expired or not one to follow. :meth:`close` gives the lease
    back."""

    __slots__ = ("connections", "lease")

    def __init__(self, lease: Lease | None, connections: list[Connection | None]):
        #: None at the user's connection limit.
        self.lease = lease
        self.connections = connections

    def close(self) -> None:
        """Give the lease back, from the user's count and every stream's.
        Idempotent."""
        if self.lease is not None:
            self.lease.release()


class Connections:
    """Admits this process's stream connections."""

    def __init__(
        self,
        registry: StreamRegistry,
        completions: CompletionStore,
        leases: ConnectionLeases,
        run: RunPipeline,
    ) -> None:
        self.registry = registry
        self.completions = completions
        self.leases = leases
        self.run = run
        self.pid = os.getpid()

    def open(
        self,
        stream_id: str,
        user_id: str,
        *,
        may_follow: Callable[[StreamMetadata], bool],
        lease: bool = True,
    ) -> Connection | None:
        """Read the stream's record and terminal event and, with ``lease``,
        take a lease for ``user_id``, in one round trip.

        Returns None, holding nothing, when the stream is unknown, expired
        (an ended record whose terminal event already expired counts as
        expired) or not one ``may_follow`` accepts. A connection whose lease
        was refused (the user's limit) has ``lease`` None.

        :raises redis.exceptions.RedisError: one of
            :data:`~flask_sse_resilience.redisio.failures.UNAVAILABLE`.
        """
        asked: list[str] = []

        def build(pipe: Any) -> None:
            self.registry.queue_get(pipe, stream_id)
            self.completions.queue_get(pipe, stream_id)
            self.registry.queue_expiry(pipe, stream_id)
            if lease:  # a build may run twice (NOSCRIPT): keep the last id
                asked[:] = [self.leases.queue_acquire(pipe, user_id)]

        sent = time.monotonic()
        raw_record, raw_completion, ttl, *grant = self.run(build)
        taken = self.leases.granted(user_id, asked[0], grant[0]) if grant else None
        conn = self._admit(
            stream_id, raw_record, raw_completion, self._lease(taken), may_follow
        )
        if conn is not None:
            conn.expires_at = self.registry.parse_expiry(ttl, sent)
        elif taken is not None:
            self.leases.release(taken)
        return conn

    def open_many(
        self,
        stream_ids: list[str],
        user_id: str,
        *,
        may_follow: Callable[[str, StreamMetadata], bool],
    ) -> MultiConnection:
        """Admit one multiplexed connection: read every stream's record and
        terminal event and take one lease for ``user_id``, in one round trip.

        Returns the :class:`MultiConnection`: its lease (None at the user's
        limit) and, per stream in order, its :class:`Connection` borrowing
        that lease, or None for a stream that is unknown, expired or not one
        ``may_follow(stream_id, record)`` accepts.

        :raises redis.exceptions.RedisError: one of
            :data:`~flask_sse_resilience.redisio.failures.UNAVAILABLE`.
        """
        asked: list[str] = []

        def build(pipe: Any) -> None:
            for stream_id in stream_ids:
                self.registry.queue_get(pipe, stream_id)
                self.completions.queue_get(pipe, stream_id)
                self.registry.queue_expiry(pipe, stream_id)
            asked[:] = [self.leases.queue_acquire(pipe, user_id)]

        sent = time.monotonic()
        replies = self.run(build)
        lease = self._lease(self.leases.granted(user_id, asked[0], replies[-1]))
        found: list[Connection | None] = []
        for index, stream_id in enumerate(stream_ids):

            def follows(record: StreamMetadata, sid: str = stream_id) -> bool:
                return may_follow(sid, record)

            record, completion, ttl = replies[3 * index : 3 * index + 3]
            conn = self._admit(
                stream_id, record, completion, lease, follows, owns_lease=False
            )
            if conn is not None:
                conn.expires_at = self.registry.parse_expiry(ttl, sent)
            found.append(conn)
        return MultiConnection(lease, found)

    def _lease(self, lease_id: str | None) -> Lease | None:
        """The :class:`Lease` of a granted lease id (None: refused)."""
        return None if lease_id is None else Lease(lease_id, self.leases, self.run)

    def _admit(
        self,
        stream_id: str,
        raw_record: Any,
        raw_completion: Any,
        lease: Lease | None,
        may_follow: Callable[[StreamMetadata], bool],
        *,
        owns_lease: bool = True,
    ) -> Connection | None:
        """The connection to a stream as read, or None: unknown, expired (an
        ended record without its terminal event) or not one to follow."""
        record = self.registry.parse(raw_record)
        completion = self.completions.parse(raw_completion)
        if (
            record is None
            or (record.state.ended and completion is None)
            or not may_follow(record)
        ):
            return None
        return Connection(stream_id, record, completion, lease, owns_lease=owns_lease)
