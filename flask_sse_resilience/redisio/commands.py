"""Sending commands: pipelines (one round trip, scripts reloaded after
``NOSCRIPT``), Lua scripts by ``EVALSHA``, the replica wait of writes that
must survive a failover, the Redis clock, and reply decoding. What counts as
Redis being unavailable is :mod:`~flask_sse_resilience.redisio.failures`'s;
the client is built in :mod:`~flask_sse_resilience.redisio.connect`."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Union

import redis
from redis import exceptions as rx
from redis.exceptions import NoScriptError
from redis.sentinel import SentinelConnectionPool

from .failures import reply_error
from .pernode import QueueCall, run_per_node

RedisClient = Union["redis.Redis", "redis.RedisCluster"]

#: Lua prelude setting ``now`` to the Redis server clock in milliseconds. Every
#: timestamp is taken from it, so hosts with skewed clocks agree.
LUA_NOW = (
    "local t = redis.call('TIME')\nlocal now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
)


def is_cluster(client: RedisClient) -> bool:
    """True for a Redis Cluster client (sharded pub/sub, per-node pools)."""
    return isinstance(client, redis.RedisCluster)


def is_sentinel(client: RedisClient) -> bool:
    """True for a client of a master that sentinels manage."""
    return isinstance(getattr(client, "connection_pool", None), SentinelConnectionPool)


#: How long a write that must survive a failover waits for a replica, in ms.
REPLICA_WAIT_MS = 500


def wait_for_replica(
    client: RedisClient, key: str, timeout_ms: int = REPLICA_WAIT_MS
) -> int:
    """On a replicated topology (Cluster, Sentinel), wait up to
    ``timeout_ms`` until a replica of ``key``'s master has every write this
    connection made (``WAIT 1``); return how many replicas acknowledged.

    Used where a write must survive a failover (a stream's creation, its
    producer's claim, its terminal event): asynchronous replication could
    otherwise lose an acknowledged write with its master. Returns 0 at once
    on a single Redis, which has nothing to wait for.
    """
    if is_cluster(client):
        node = client.get_node_from_key(key)  # type: ignore[union-attr]
        reply = client.execute_command("WAIT", 1, timeout_ms, target_nodes=node)  # type: ignore[no-untyped-call]
        return int(reply)
    if is_sentinel(client):
        # Only this connection's writes count: a write made on another pooled
        # connection is waited for in its own pipeline (Scripts.run_replicated).
        return int(client.wait(1, timeout_ms))
    return 0


#: Every script this process uses, by SHA1: what a pipeline that met
#: ``NOSCRIPT`` loads before it runs again.
_SOURCES: dict[str, str] = {}


class LuaScript:
    """A Lua script run by ``EVALSHA``, loaded into Redis on first use.

    Unlike redis-py's ``Script`` in a pipeline, which asks ``SCRIPT EXISTS``
    before every execution, queued calls here cost nothing extra: a pipeline
    that meets ``NOSCRIPT`` (first use, or Redis restarted) loads the script
    and runs again, so only idempotent scripts belong in :meth:`run_many`.
    """

    def __init__(self, client: RedisClient, source: str) -> None:
        self.client = client
        self.source = source
        self.sha = hashlib.sha1(source.encode("utf-8")).hexdigest()
        _SOURCES[self.sha] = source

    def __call__(self, keys: Sequence[str], args: Sequence[Any] = ()) -> Any:
        """Run the script once and return its reply."""
        try:
            try:
                return self.client.evalsha(self.sha, len(keys), *keys, *args)
            except NoScriptError:
                node = None
                if is_cluster(self.client) and keys:
                    node = self.client.get_node_from_key(keys[0])  # type: ignore[union-attr]
                load_scripts(self.client, node)
                return self.client.evalsha(self.sha, len(keys), *keys, *args)
        except rx.ResponseError as exc:
            raise reply_error(exc) from exc

    def queue(self, pipe: Any, keys: Sequence[str], args: Sequence[Any] = ()) -> None:
        """Add one run of the script to ``pipe`` (see :func:`run_pipeline`)."""
        # Not pipe.evalsha(): a cluster pipeline refuses that method by name.
        # And on a cluster, name the node: left to itself, redis-py's cluster
        # pipeline asks its default node for an EVALSHA's keys (COMMAND
        # GETKEYS), so every script pipeline fails while that node is down.
        if is_cluster(self.client):
            node = self.client.get_node_from_key(keys[0])  # type: ignore[union-attr]
            pipe.execute_command(
                "EVALSHA", self.sha, len(keys), *keys, *args, target_nodes=node
            )
        else:
            pipe.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)

    def run_many(
        self,
        calls: Sequence[tuple[Sequence[str], Sequence[Any]]],
        *,
        partial: bool = False,
    ) -> list[Any]:
        """Run the script once per ``(keys, args)`` in one pipelined round trip
        (on a cluster, one per node, all at once; see
        :mod:`~flask_sse_resilience.redisio.pernode`).

        With ``partial``, a call whose node failed gets the exception as its
        reply; otherwise the first such exception is raised, after every node
        ran its calls.
        """
        replies = run_calls(
            self.client,
            [keys[0] for keys, _ in calls],
            lambda pipe, i: self.queue(pipe, *calls[i]),
        )
        if not partial:
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
        return replies


def run_calls(
    client: RedisClient, keys: Sequence[str], queue_call: QueueCall
) -> list[Any]:
    """Run ``len(keys)`` calls in one pipelined round trip, call ``i``
    queued by ``queue_call(pipe, i)`` and acting on ``keys[i]``; on a
    cluster, one pipeline per node, all at once (see
    :mod:`~flask_sse_resilience.redisio.pernode`), and a call whose node
    failed gets that error as its reply. On one Redis the first error is
    raised."""
    if not is_cluster(client) or not keys:

        def queue(pipe: Any) -> None:
            for i in range(len(keys)):
                queue_call(pipe, i)

        return run_pipeline(client, queue)
    return run_per_node(
        client,
        list(keys),
        queue_call,
        lambda queue, node: run_pipeline(client, queue, node=node),
    )


def run_pipeline(
    client: RedisClient, build: Callable[[Any], None], *, node: Any = None
) -> list[Any]:
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
            load_scripts(client, node)
            continue
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply_error(reply)
        return list(replies)
    raise AssertionError("unreachable")


def load_scripts(client: RedisClient, node: Any = None) -> None:
    """Load every script this process uses into Redis: into ``node`` (a
    cluster node), or every master of a cluster, in one round trip per node."""
    if is_cluster(client):
        target = node or redis.RedisCluster.PRIMARIES
        for source in list(_SOURCES.values()):
            client.execute_command("SCRIPT LOAD", source, target_nodes=target)  # type: ignore[no-untyped-call]
        return
    loader = client.pipeline(transaction=False)
    for source in list(_SOURCES.values()):
        loader.script_load(source)
    loader.execute()


def script(client: RedisClient, source: str) -> LuaScript:
    """Wrap a Lua script for ``client``; it loads itself on first use."""
    return LuaScript(client, source)


def run_parts(
    client: RedisClient, parts: Mapping[str, Callable[[Any], None]]
) -> dict[str, list[Any]]:
    """Run several readers' queued commands in one round trip (see
    :func:`run_pipeline`); return each part's replies by its name, so every
    reader parses its own, whatever the others queued."""
    spans: dict[str, tuple[int, int]] = {}

    def build(pipe: Any) -> None:
        for name, queue in parts.items():
            start = len(pipe)
            queue(pipe)
            spans[name] = (start, len(pipe))

    replies = run_pipeline(client, build)
    return {name: replies[start:end] for name, (start, end) in spans.items()}


def queue_now(pipe: Any) -> None:
    """Queue reading the Redis clock on ``pipe`` (see :func:`parse_now`)."""
    pipe.time()


def parse_now(reply: Any) -> int:
    """Milliseconds since the epoch from a ``TIME`` reply (say, of
    :func:`queue_now`); the same sum as :data:`LUA_NOW`'s."""
    seconds, micros = reply
    return int(seconds) * 1000 + int(micros) // 1000


def as_text(value: Any) -> str:
    """Decode a Redis reply to ``str``, whatever ``decode_responses`` is."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def hash_to_text(raw: Mapping[Any, Any] | None) -> dict[str, str]:
    """Decode an ``HGETALL`` reply to a ``dict[str, str]`` ({} when missing)."""
    return {as_text(k): as_text(v) for k, v in (raw or {}).items()}
