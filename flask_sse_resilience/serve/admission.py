"""One client's stream connection, from admission to close.

A :class:`Connection` is what a stream request holds in Redis and gives back:
the stream's record and terminal event as read on admission, and a lease
(see :mod:`~flask_sse_resilience.store.leases`) that counts the connection for its
user from admission and for the stream once the response follows it. It is
opened by :meth:`Connections.open` (one round trip: record, completion and
lease together, shared with concurrent requests) and closed by
:meth:`Connection.close`, exactly once however the response ends. Nothing
else takes or gives back a connection's footprint.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from ..models import CompletionData, StreamMetadata
from ..redisio.loops import Build
from ..store.completion import CompletionStore
from ..store.leases import ConnectionLeases
from ..store.registry import StreamRegistry

#: Runs a pipeline: ``run(build)`` returns the replies of what ``build`` queued.
RunPipeline = Callable[[Build], list[Any]]


class Connection:
    """An admitted connection to one stream (see the module docstring)."""

    __slots__ = (
        "_leases", "_run", "completion", "expires_at", "lease", "record", "stream_id",
    )  # fmt: skip

    def __init__(
        self,
        stream_id: str,
        record: StreamMetadata,
        completion: CompletionData | None,
        lease: str | None,
        leases: ConnectionLeases,
        run: RunPipeline,
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
        #: The lease held, or None: at the user's limit, or not asked for.
        self.lease = lease
        self._leases = leases
        self._run = run

    def queue_join(self, pipe: Any) -> None:
        """Queue counting this connection for its stream on ``pipe`` (no-op
        without a lease); it counts until :meth:`close`."""
        if self.lease is not None:
            self._leases.queue_join(pipe, self.lease, self.stream_id)

    def close(self) -> None:
        """Give the lease back, from the user's and the stream's counts.
        Idempotent; retried until it lands if Redis is unavailable."""
        lease, self.lease = self.lease, None
        if lease is not None:
            self._leases.release(lease, self._run)


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
        conn = self._admit(stream_id, raw_record, raw_completion, taken, may_follow)
        if conn is not None:
            conn.expires_at = self.registry.parse_expiry(ttl, sent)
        if conn is None and taken is not None:
            self.leases.release(taken)
        return conn

    def _admit(
        self,
        stream_id: str,
        raw_record: Any,
        raw_completion: Any,
        lease: str | None,
        may_follow: Callable[[StreamMetadata], bool],
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
        return Connection(stream_id, record, completion, lease, self.leases, self.run)

    def open_many(
        self,
        stream_ids: list[str],
        user_id: str,
        *,
        may_follow: Callable[[str, StreamMetadata], bool],
    ) -> tuple[str | None, list[Connection | None]]:
        """Admit one multiplexed connection: read every stream's record and
        terminal event and take one lease for ``user_id``, in one round trip.

        Returns the lease (None at the user's limit) and, per stream in
        order, its :class:`Connection` sharing that lease, or None for a
        stream that is unknown, expired or not one ``may_follow(stream_id,
        record)`` accepts. The caller gives the lease back (the connections'
        own :meth:`Connection.close` is not for them).

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
        lease = self.leases.granted(user_id, asked[0], replies[-1])
        found: list[Connection | None] = []
        for index, stream_id in enumerate(stream_ids):

            def follows(record: StreamMetadata, sid: str = stream_id) -> bool:
                return may_follow(sid, record)

            record, completion, ttl = replies[3 * index : 3 * index + 3]
            conn = self._admit(stream_id, record, completion, lease, follows)
            if conn is not None:
                conn.expires_at = self.registry.parse_expiry(ttl, sent)
            found.append(conn)
        return lease, found
