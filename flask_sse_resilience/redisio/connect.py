"""Building the Redis client from ``SSE_RESILIENCE_REDIS_URL``: standalone,
Cluster or Sentinel, with blocking, fair pools (see
:mod:`~flask_sse_resilience.redisio.pool`) and quick retries."""

from __future__ import annotations

import random
from typing import Any

import redis
from redis.backoff import EqualJitterBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

from ..settings import SCHEMES
from .commands import RedisClient
from .failures import WrongDatabase
from .pool import FairQueue

#: Attempts after the first, and the backoff between them: 0.05-0.1 s, then
#: 0.1-0.2, 0.2-0.4 and 0.25-0.5 s, so a failed command is retried for at
#: least 0.6 s and at most 1.2 s (plus the attempts themselves) before its
#: error is raised. Equal jitter, not full jitter: the waits never shrink to
#: nothing, so the budget holds on every call.
RETRIES = 4

#: On a cluster, the shortest time between two topology refreshes that
#: errors ask for (redis-py's default is one second).
TOPOLOGY_REFRESH = 0.1


#: Our own generator: retries in background threads must not move the
#: application's ``random`` (an app that seeds it for a reproducible run, or a
#: property-based test drawing from it, would see its sequence change).
_jitter = random.Random()


class _EqualJitter(EqualJitterBackoff):
    """redis-py's equal jitter (half the capped exponential wait, plus up to
    that half again), drawn from :data:`_jitter`."""

    def __init__(self, cap: float, base: float) -> None:
        super().__init__(cap=cap, base=base)
        self._wait_cap, self._wait_base = cap, base

    def compute(self, failures: int) -> float:
        half = min(self._wait_cap, self._wait_base * 2.0 ** min(failures, 64)) / 2
        return half + _jitter.uniform(0, half)


def _retry() -> Retry:
    """The retry policy of every client this module builds.

    Its budget is what a request spends on a stale topology before it
    answers 503. Right after a failover, a pooled connection leads to the
    dead master, and the first node a cluster client asks for the slot map
    may still name it; redis-py's refresh after the first error then finds
    the old map. Retried within about 0.15 s with one refresh per second (as
    before), a quarter to a half of the first requests on idle workers
    answered 503 while the promoted replica served (tests/test_clients.py);
    with the first retry 50 ms or more later, and a refresh allowed before
    each one, none did. A really unavailable Redis is still reported within
    about a second and a half (on a refused connection).
    """
    return Retry(_EqualJitter(cap=0.5, base=0.05), RETRIES)


#: Seconds a command waits for a free pooled connection before failing.
_POOL_WAIT = 5

_SOCKETS: dict[str, Any] = {
    # No CLIENT SETINFO on connect: one round trip less per connection, and
    # its error replies (Redis < 7.2) came back misaligned in a failover.
    "driver_info": None,
    "decode_responses": True,
    "socket_connect_timeout": 2,
    "socket_timeout": 5,
}


def _pool_options(max_connections: int) -> dict[str, Any]:
    """What every pool this module builds shares: at most ``max_connections``
    sockets, waiting (first come, first served) up to :data:`_POOL_WAIT`
    seconds for a free one, the retry policy and the socket options."""
    return {
        "max_connections": max_connections,
        "timeout": _POOL_WAIT,
        "queue_class": FairQueue,
        "retry": _retry(),
        **_SOCKETS,
    }


def _on_connect(connection: Any) -> None:
    """redis-py's handshake (``AUTH``, ``SELECT``...), with a database out of
    range raised as :class:`~flask_sse_resilience.redisio.failures.WrongDatabase`
    (saying how many the server has) instead of a bare ``ResponseError``
    that no outage handling would recognise."""
    try:
        connection.on_connect()
    except redis.ResponseError as exc:
        if "DB index is out of range" not in str(exc):
            raise
        raise WrongDatabase(int(connection.db), _databases(connection)) from exc


def _databases(connection: Any) -> int | None:
    """The server's ``databases`` setting, asked on the connection whose
    ``SELECT`` just failed (still on database 0), or None if it will not say
    (``CONFIG`` renamed or refused, as on some managed services)."""
    try:
        connection.send_command("CONFIG", "GET", "databases")
        reply = connection.read_response()
    except redis.RedisError:
        return None
    if isinstance(reply, dict):  # RESP3
        reply = [item for pair in reply.items() for item in pair]
    try:
        return int(reply[1])
    except (IndexError, TypeError, ValueError):
        return None


def make_client(url: str, *, max_connections: int) -> RedisClient:
    """Return a client for ``url`` with bounded, blocking connection pools.

    ``redis://``, ``rediss://`` and ``unix://`` URLs give a plain client;
    ``redis+cluster://host:port`` a :class:`redis.RedisCluster` that finds the
    other nodes itself; ``redis+sentinel://host:port[,host:port...]/<master
    name>[/<db>]`` a client of the master the sentinels name, following
    failovers (``rediss+`` for TLS).

    Each pool (one per cluster node) holds at most ``max_connections`` sockets;
    a greenlet that finds them all busy waits instead of opening another, so a
    worker serving thousands of SSE clients still holds a handful of Redis
    connections. Waiters are served first come, first served (see
    :class:`~flask_sse_resilience.redisio.pool.FairQueue`), so a tight loop cannot
    starve them. Failed commands are retried :data:`RETRIES` times with
    jittered exponential backoff for 0.6-1.2 s (see :func:`_retry`), so a
    blip or a failover's stale topology is absorbed, but an outage is
    reported in about a second instead of after redis-py's default ten
    retries. A database number the
    server does not have fails on connect with
    :class:`~flask_sse_resilience.redisio.failures.WrongDatabase`.

    :raises ValueError: for a URL of another scheme, or a sentinel URL without
        a master name.
    """
    scheme, _, rest = url.partition("://")
    if scheme not in SCHEMES or not rest:
        raise ValueError(
            f"unsupported Redis URL {url!r}: use one of "
            + ", ".join(f"{s}://" for s in SCHEMES)
        )
    if scheme.endswith("+cluster"):
        return redis.RedisCluster.from_url(
            f"{scheme.split('+')[0]}://{rest}",
            connection_pool_class=redis.BlockingConnectionPool,
            topology_refresh_min_interval=TOPOLOGY_REFRESH,
            **_pool_options(max_connections),
        )
    if scheme.endswith("+sentinel"):
        return _sentinel_client(scheme, rest, max_connections)
    pool = redis.BlockingConnectionPool.from_url(
        url, redis_connect_func=_on_connect, **_pool_options(max_connections)
    )
    return redis.Redis(connection_pool=pool)


class _BlockingSentinelPool(SentinelConnectionPool, redis.BlockingConnectionPool):
    """A sentinel-managed pool that waits for a free connection when full."""


def _sentinel_client(scheme: str, rest: str, max_connections: int) -> redis.Redis:
    hosts, _, path = rest.partition("/")
    service, _, db = path.strip("/").partition("/")
    if not service:
        raise ValueError("a redis+sentinel:// URL needs the master name as its path")
    sentinels = []
    for host in hosts.split(","):
        name, _, port = host.rpartition(":")
        sentinels.append((name or "localhost", int(port or 26379)))
    sentinel = Sentinel(sentinels, sentinel_kwargs={"socket_timeout": 2})  # type: ignore[no-untyped-call, unused-ignore]
    client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call, unused-ignore]
        service,
        connection_pool_class=_BlockingSentinelPool,
        db=int(db or 0),
        ssl=scheme.startswith("rediss"),
        redis_connect_func=_on_connect,
        **_pool_options(max_connections),
    )
    return client
