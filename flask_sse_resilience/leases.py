"""Connection leases: how many streams a user follows at once, across workers.

Each open stream connection holds a lease in the user's sorted set
(``<prefix>user:{<hash>}:connections``), scored by when it expires. A
connection takes its lease before the response starts (or gets a 429), gives
it back when the response closes, and this process renews the leases of all
its open connections in one pipeline per heartbeat interval. A worker that
dies stops renewing, so its connections stop counting within a few intervals.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections.abc import Callable
from typing import Any

from .keys import Keys
from .loops import Periodic
from .redisutil import LUA_NOW, UNAVAILABLE, RedisClient, script

log = logging.getLogger(__name__)

# KEYS: the user's connections. ARGV: lease id, limit, lease_ms.
_ACQUIRE = (
    LUA_NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + ARGV[3], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""
)

# KEYS: the user's connections. ARGV: lease id, lease_ms. Renews only a lease
# that still exists (XX), so a released one stays released.
_RENEW = (
    LUA_NOW
    + """
redis.call('ZADD', KEYS[1], 'XX', now + ARGV[2], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
)


class ConnectionLeases:
    """Counts a user's open connections against a limit, across processes."""

    def __init__(
        self, redis: RedisClient, keys: Keys, *, limit: int, interval: float
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.limit = limit
        self.interval = interval
        self.lease_ms = int(interval * 3 * 1000)
        self.pid = os.getpid()
        self._held: dict[str, str] = {}  # lease id -> user key
        self._lock = threading.Lock()
        self.loop = Periodic("leases", self.renew, interval)
        self._acquire = script(redis, _ACQUIRE)
        self._renew = script(redis, _RENEW)

    def acquire(self, user_id: str) -> str | None:
        """Take a lease for ``user_id``; return its id, or None at the limit."""
        lease = secrets.token_hex(8)
        key = self.keys.user_connections(user_id)
        granted = self._acquire(keys=[key], args=[lease, self.limit, self.lease_ms])
        return self.granted(user_id, lease, granted)

    def queue_acquire(self, pipe: Any, user_id: str) -> str:
        """Queue a lease request for ``user_id`` on ``pipe`` (for
        :func:`~flask_sse_resilience.redisutil.run_pipeline`); return the
        lease id to pass to :meth:`granted` with the reply."""
        lease = secrets.token_hex(8)
        key = self.keys.user_connections(user_id)
        self._acquire.queue(pipe, [key], [lease, self.limit, self.lease_ms])
        return lease

    def granted(self, user_id: str, lease: str, reply: Any) -> str | None:
        """Record the outcome of a lease request: the lease id if ``reply``
        granted it (this process then renews it until :meth:`release`), or
        None at the limit."""
        if not reply:
            return None
        key = self.keys.user_connections(user_id)
        with self._lock:
            self._held[lease] = key
        self.loop.ensure()
        return lease

    def release(
        self, lease: str, batch: Callable[[Callable[[Any], None]], Any] | None = None
    ) -> None:
        """Give a lease back (idempotent; a Redis error leaves it to expire).

        ``batch`` (a :class:`~flask_sse_resilience.batching.Batcher`'s ``run``)
        shares the round trip with other requests, as when thousands of
        clients leave at once.
        """
        with self._lock:
            key = self._held.pop(lease, None)
        if key is None:
            return
        try:
            if batch is None:
                self.redis.zrem(key, lease)
            else:
                batch(lambda pipe: pipe.zrem(key, lease))
        except UNAVAILABLE:
            log.warning("could not release a connection lease; it will expire")

    def renew(self) -> None:
        """Renew every lease this process holds, in one round trip."""
        with self._lock:
            held = list(self._held.items())
        if held:
            self._renew.run_batch(
                [([key], [lease, self.lease_ms]) for lease, key in held]
            )

    def stop(self) -> None:
        """Stop renewing."""
        self.loop.stop()
