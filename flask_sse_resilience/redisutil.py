"""The Redis client: how it is built, and small helpers shared by every store."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Union

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

RedisClient = Union["redis.Redis", "redis.RedisCluster"]

#: Lua prelude setting ``now`` to the Redis server clock in milliseconds. Every
#: timestamp is taken from it, so hosts with skewed clocks agree.
LUA_NOW = (
    "local t = redis.call('TIME')\nlocal now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
)

#: Errors meaning "Redis cannot be reached right now" (answered with a 503).
UNAVAILABLE: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError)


def make_client(url: str, *, max_connections: int) -> redis.Redis:
    """Return a client for ``url`` with a bounded, blocking connection pool.

    The pool holds at most ``max_connections`` sockets; a greenlet that finds
    them all busy waits (up to 5 s) instead of opening another, so a worker
    serving thousands of SSE clients still holds a handful of Redis
    connections. Failed commands are retried 3 times with jittered exponential
    backoff, so a short blip is absorbed but an outage is reported in about a
    second instead of redis-py's default ten retries.
    """
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=5,
        decode_responses=True,
        socket_connect_timeout=2,
        socket_timeout=5,
        retry=Retry(ExponentialWithJitterBackoff(base=0.02, cap=0.5), 3),
    )
    return redis.Redis(connection_pool=pool)


#: Every script this process uses, by SHA1: what a pipeline that met
#: ``NOSCRIPT`` loads before it runs again.
_SOURCES: dict[str, str] = {}


class LuaScript:
    """A Lua script run by ``EVALSHA``, loaded into Redis on first use.

    Unlike redis-py's ``Script`` in a pipeline, which asks ``SCRIPT EXISTS``
    before every execution, queued calls here cost nothing extra: a pipeline
    that meets ``NOSCRIPT`` (first use, or Redis restarted) loads the script
    and runs again, so only idempotent scripts belong in :meth:`run_batch`.
    """

    def __init__(self, client: RedisClient, source: str) -> None:
        self.client = client
        self.source = source
        self.sha = hashlib.sha1(source.encode("utf-8")).hexdigest()
        _SOURCES[self.sha] = source

    def __call__(self, keys: Sequence[str], args: Sequence[Any] = ()) -> Any:
        """Run the script once and return its reply."""
        try:
            return self.client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            self.client.script_load(self.source)
            return self.client.evalsha(self.sha, len(keys), *keys, *args)

    def queue(self, pipe: Any, keys: Sequence[str], args: Sequence[Any] = ()) -> None:
        """Add one run of the script to ``pipe`` (see :func:`run_pipeline`)."""
        pipe.evalsha(self.sha, len(keys), *keys, *args)

    def run_batch(
        self, calls: Sequence[tuple[Sequence[str], Sequence[Any]]]
    ) -> list[Any]:
        """Run the script once per ``(keys, args)`` in one pipelined round trip."""

        def build(pipe: Any) -> None:
            for keys, args in calls:
                self.queue(pipe, keys, args)

        return run_pipeline(self.client, build)


def run_pipeline(client: RedisClient, build: Callable[[Any], None]) -> list[Any]:
    """Queue commands with ``build(pipe)`` and run them in one round trip
    (no transaction); return the replies, raising the first error.

    If a script call meets ``NOSCRIPT`` (first use, or Redis restarted), every
    script is loaded and the whole pipeline runs again: so everything in
    it must be safe to repeat, except one script call (which, having met
    ``NOSCRIPT``, did not run the first time).
    """
    for attempt in (1, 2):
        pipe = client.pipeline(transaction=False)
        build(pipe)
        replies = pipe.execute(raise_on_error=False)
        if attempt == 1 and any(isinstance(x, NoScriptError) for x in replies):
            load_scripts(client)
            continue
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return list(replies)
    raise AssertionError("unreachable")


def load_scripts(client: RedisClient) -> None:
    """Load every script this process uses into Redis, in one round trip."""
    loader = client.pipeline(transaction=False)
    for source in list(_SOURCES.values()):
        loader.script_load(source)
    loader.execute()


def script(client: RedisClient, source: str) -> LuaScript:
    """Wrap a Lua script for ``client``; it loads itself on first use."""
    return LuaScript(client, source)


def as_text(value: Any) -> str:
    """Decode a Redis reply to ``str``, whatever ``decode_responses`` is."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def hash_to_text(raw: Mapping[Any, Any] | None) -> dict[str, str]:
    """Decode an ``HGETALL`` reply to a ``dict[str, str]`` ({} when missing)."""
    return {as_text(k): as_text(v) for k, v in (raw or {}).items()}
