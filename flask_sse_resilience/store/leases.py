"""Connection leases: every open stream connection's footprint in Redis.

Each open stream connection holds one lease, a random id entered in two sorted
sets scored by when it expires (Redis clock):

* the user's (``<prefix>user:{<hash>}:connections``): how many streams a user
  follows at once, across workers, against a limit (or a 429);
* the stream's (``<prefix>{s<n>}:connections:<id>``), once the connection
  follows it: the stream's live connection count.

This object takes a lease before the response starts, adds the stream once the
response follows it, gives both back when the response closes, and renews
every lease this process holds in one pipeline per heartbeat interval. Nothing
is a counter that a lost write could leave wrong: a give-back that fails
(Redis unavailable) is retried until it lands (see
:class:`~flask_sse_resilience.redisio.loops.Deferred`), a write lost in a failover
expires, and a worker that dies stops renewing, so its connections stop
counting within three heartbeat intervals. Counts are the sets' sizes.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import threading
from collections.abc import Callable
from typing import Any

from ..redisio import outages
from ..redisio.commands import RedisClient
from ..redisio.loops import Build, Deferred, Periodic
from . import scripts
from .keys import Keys
from .scripts import Added, Scripts


def lease_ms(interval: float) -> int:
    """How long a lease lasts unless renewed: three heartbeat intervals."""
    return int(interval * 3 * 1000)


@dataclasses.dataclass
class _Held:
    user_key: str
    #: The streams the lease counts for: one, or several for a multiplexed
    #: response (one connection, counted once for its user).
    streams: list[str] = dataclasses.field(default_factory=list)


class ConnectionLeases:
    """Takes, renews and gives back the leases of this process's connections."""

    def __init__(
        self,
        redis: RedisClient,
        keys: Keys,
        *,
        limit: int,
        interval: float,
        deferred: Deferred | None = None,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.limit = limit
        self.interval = interval
        self.lease_ms = lease_ms(interval)
        self.pid = os.getpid()
        self._own_deferred = deferred is None
        self.deferred = deferred or Deferred(redis)
        self._held: dict[str, _Held] = {}
        self._lock = threading.Lock()
        self.loop = Periodic(
            "leases", self.renew, interval, report=outages.of(redis).failed
        )
        self.scripts = Scripts(redis)

    @property
    def held(self) -> int:
        """Leases this process holds now."""
        with self._lock:
            return len(self._held)

    def _acquire(self, user_id: str, lease: str) -> scripts.Call[Added]:
        return scripts.capped_add(
            self.keys.user_connections(user_id),
            lease,
            limit=self.limit,
            ttl_ms=self.lease_ms,
        )

    def queue_acquire(self, pipe: Any, user_id: str) -> str:
        """Queue a lease request for ``user_id`` on ``pipe`` (for
        :func:`~flask_sse_resilience.redisio.commands.run_pipeline`); return the
        lease id to pass to :meth:`granted` with the reply."""
        lease = secrets.token_hex(8)
        self.scripts.queue(pipe, self._acquire(user_id, lease))
        return lease

    def granted(self, user_id: str, lease: str, reply: Any) -> str | None:
        """Record the outcome of a lease request: the lease id if ``reply``
        granted it (this process then renews it until :meth:`release`), or
        None at the limit."""
        if Added.parse(reply) is not Added.ADDED:
            return None
        with self._lock:
            self._held[lease] = _Held(self.keys.user_connections(user_id))
        self.loop.ensure()
        return lease

    def queue_join(self, pipe: Any, lease: str, stream_id: str) -> None:
        """Queue adding a held ``lease`` to ``stream_id``'s connections on
        ``pipe``; the reply is an :class:`~flask_sse_resilience.store.scripts.Added`
        (``GONE`` if the stream's record is gone: nothing was added). The
        lease then counts for the stream until :meth:`release`."""
        key = self.keys.stream_connections(stream_id)
        with self._lock:
            held = self._held.get(lease)
            if held is not None and stream_id not in held.streams:
                held.streams.append(stream_id)
        join = scripts.capped_add(
            key, lease, ttl_ms=self.lease_ms, must_exist=self.keys.stream(stream_id)
        )
        self.scripts.queue(pipe, join)

    def release(self, lease: str, via: Callable[[Build], Any] | None = None) -> None:
        """Give a lease back, from the user's and the stream's sets
        (idempotent; retried until it lands if Redis is unavailable).

        ``via`` (a
        :class:`~flask_sse_resilience.redisio.sharedpipe.SharedPipeline`'s
        ``run``) shares the round trip with other requests, as when thousands of
        clients leave at once.
        """
        with self._lock:
            held = self._held.pop(lease, None)
        if held is None:
            return

        def build(pipe: Any) -> None:
            pipe.zrem(held.user_key, lease)
            for stream_id in held.streams:
                leave = scripts.leave(self.keys, stream_id, lease=lease)
                self.scripts.queue(pipe, leave)

        self.deferred.run(build, via)

    def renew(self) -> None:
        """Renew every lease this process holds, in one round trip."""
        with self._lock:
            held = list(self._held.items())
        keys = [(h.user_key, lease) for lease, h in held]
        keys += [
            (self.keys.stream_connections(stream_id), lease)
            for lease, h in held
            for stream_id in h.streams
        ]
        calls = [scripts.renew(key, lease, ttl_ms=self.lease_ms) for key, lease in keys]
        self.scripts.run_many(calls)

    def stop(self) -> None:
        """Stop renewing (and retrying give-backs, unless they are shared)."""
        self.loop.stop()
        if self._own_deferred:
            self.deferred.loop.stop()
