"""Every Lua script the package runs, and the one way to call each.

The scripts are the stream aggregate's writes (record, log, completion, active
index and their expiry) and the other atomic steps (leases, the guardian's
lock). Their sources live in ``lua/*.lua`` beside this module, with the
record's field names filled in from :class:`~flask_sse_resilience.models.RecordField`
and its siblings, so a field is named in one place. Each script is called
through a builder here that takes named arguments and returns a :class:`Call`
(the script, its ``KEYS`` and its ``ARGV``); replies that are statuses come
back as the ``IntEnum`` of that script. No other module knows a script's
argument order or its status numbers. :class:`Scripts` loads them into
Redis and runs them.
"""

from __future__ import annotations

import enum
import string
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any, NamedTuple

from ..models import CompletionField, EntryField, RecordField, StreamState
from ..redisio.commands import (
    LUA_NOW,
    REPLICA_WAIT_MS,
    LuaScript,
    RedisClient,
    is_cluster,
    is_sentinel,
    run_pipeline,
    script,
)
from .keys import Keys


def _fields() -> dict[str, str]:
    names = {f.name: f.value for f in RecordField}
    names.update({f"C_{f.name}": f.value for f in CompletionField})
    names.update({f.name: f.value for f in CompletionField if f.name not in names})
    names.update({f"E_{f.name}": f.value for f in EntryField})
    return names


def _read(name: str) -> str:
    lua = resources.files(__package__ or "flask_sse_resilience.store") / "lua"
    return (lua / f"{name}.lua").read_text(encoding="utf-8")


@cache
def _source(name: str, sharded: bool) -> str:
    """The source of script ``name``, fields and publish command filled in."""
    text = _read(name).replace("${CHECK}", _read("check"))
    values = _fields() | {"PUBLISH": "'SPUBLISH'" if sharded else "'PUBLISH'"}
    body = string.Template(text).substitute(values)
    return (LUA_NOW + body) if name in _CLOCKED else body


#: The scripts that read the Redis clock (``now``); only they pay for ``TIME``.
#: (``append`` shares the guardian's branch of ``check``, never taken by it.)
_CLOCKED = frozenset(
    {"capped_add", "renew", "register", "heartbeat", "stale_ids", "claim",
     "finish", "record_sweep", "cancel", "abandon", "leave"}
)  # fmt: skip


class Call(NamedTuple):
    """One call of a script: which, and its ``KEYS`` and ``ARGV``."""

    script: str
    keys: list[str]
    args: list[Any]


class Scripts:
    """The scripts bound to one client, each loaded into Redis on first use.

    A cluster announces on sharded channels (``SPUBLISH``), which live in the
    stream's own slot like its keys, so every script stays on one node.
    """

    def __init__(self, client: RedisClient) -> None:
        self.client = client
        self._sharded = is_cluster(client)
        self._bound: dict[str, LuaScript] = {}

    def _script(self, name: str) -> LuaScript:
        bound = self._bound.get(name)
        if bound is None:
            bound = self._bound[name] = script(
                self.client, _source(name, self._sharded)
            )
        return bound

    def run(self, call: Call) -> Any:
        """Run one call; return its reply."""
        return self._script(call.script)(call.keys, call.args)

    def run_replicated(self, call: Call) -> Any:
        """Run one call whose write must survive a failover; return its reply.

        Behind Sentinel, ``WAIT 1`` follows the call in the same pipeline:
        ``WAIT`` counts the writes of its own connection, so a ``WAIT`` sent
        on another pooled connection would return at once while this write
        is still only on the master. If the master dies before a replica has
        it, the ``WAIT`` fails and the caller's (idempotent) retry writes it
        on the new master. Elsewhere, as :meth:`run` (a cluster's callers
        wait through :func:`~flask_sse_resilience.redisio.commands.wait_for_replica`).
        """
        if not is_sentinel(self.client):
            return self.run(call)

        def build(pipe: Any) -> None:
            self.queue(pipe, call)
            pipe.execute_command("WAIT", 1, REPLICA_WAIT_MS)

        return run_pipeline(self.client, build)[0]

    def queue(self, pipe: Any, call: Call) -> None:
        """Queue one call on ``pipe`` (see
        :func:`~flask_sse_resilience.redisio.commands.run_pipeline`)."""
        self._script(call.script).queue(pipe, call.keys, call.args)

    def run_many(self, calls: list[Call], *, partial: bool = False) -> list[Any]:
        """Run calls of one script in one pipelined round trip (per node);
        see :meth:`~flask_sse_resilience.redisio.commands.LuaScript.run_many`."""
        if not calls:
            return []
        names = {call.script for call in calls}
        if len(names) != 1:
            raise ValueError(f"run_many takes calls of one script, not {names}")
        return self._script(calls[0].script).run_many(
            [(call.keys, call.args) for call in calls], partial=partial
        )


class Status(enum.IntEnum):
    """Replies of the log's writes (``claim``, ``append``, ``finish``)."""

    WRITTEN = 1
    #: Already written: a retried call, acknowledged without writing.
    DUPLICATE = 0
    ENDED = -1
    MISSING = -2
    #: Another producer holds the write lease.
    CONFLICT = -3
    #: The producer's number is past the log's next one: the log lost writes.
    BEHIND = -4
    #: (The guardian's terminal write) the stream heartbeated meanwhile.
    NOT_STALE = -5
    #: A cancel was asked for (only an end as ``cancelled`` is written), or
    #: the stream ended cancelled.
    CANCELLED = -6
    #: (``register``) the key names another stream.
    KEY_TAKEN = -7


class Added(enum.IntEnum):
    """Replies of :func:`capped_add`."""

    ADDED = 1
    REFRESHED = 0
    FULL = -1
    #: The key that had to exist (the stream's record) does not.
    GONE = -2


# -- builders: one per script ------------------------------------------------


def capped_add(
    key: str, member: str, *, ttl_ms: int, limit: int = 0, must_exist: str = ""
) -> Call:
    """Add (or refresh) ``member`` in the capped expiring set ``key`` unless
    it holds ``limit`` members already (0: no limit) or ``must_exist`` is
    given and missing; reply: :class:`Added`."""
    keys = [key, must_exist] if must_exist else [key]
    return Call("capped_add", keys, [member, limit, ttl_ms])


def renew(key: str, member: str, *, ttl_ms: int) -> Call:
    """Renew a member of a capped set that is still there."""
    return Call("renew", [key], [member, ttl_ms])


def register(
    keys: Keys,
    stream_id: str,
    *,
    stream_type: str,
    user_id: str,
    metadata_json: str,
    ttl_ms: int,
    key: str = "",
    expected: str = "",
    max_events: int | None = None,
    completion_ttl_ms: int | None = None,
    abandon_ms: int | None = None,
    pointer_ttl_ms: int = 0,
) -> Call:
    """Create an active record (with ``key``: only if the key names no other
    active stream, the one ``expected`` included); reply ``[start ms]``,
    ``[0]`` if the id is taken, or ``[KEY_TAKEN, id, state]``."""
    stream_keys = [
        keys.stream(stream_id),
        keys.active_of(stream_id),
        keys.abandon(keys.shard(stream_id)),
    ]
    if key:
        stream_keys.append(keys.key_pointer(user_id, key))
        if expected:
            stream_keys.append(keys.stream(expected))
    return Call(
        "register",
        stream_keys,
        [
            stream_id, stream_type, user_id, metadata_json, ttl_ms, key, expected,
            _optional(max_events), _optional(completion_ttl_ms), _optional(abandon_ms),
            pointer_ttl_ms or ttl_ms,
        ],
    )  # fmt: skip


def _optional(value: int | None) -> str | int:
    return "" if value is None else value


def heartbeat(keys: Keys, stream_id: str) -> Call:
    """Refresh an active stream's heartbeat; reply 1, or 0 if it is gone or
    ended (its index entry is dropped; if gone, its followers are told)."""
    return Call(
        "heartbeat",
        [keys.stream(stream_id), keys.active_of(stream_id)],
        [stream_id, keys.channel(stream_id)],
    )


def stale_ids(
    keys: Keys,
    shard: int,
    *,
    stale_ms: int,
    limit: int,
    grace_ms: int,
    watch: bool = False,
    gap_ms: int = 0,
    watch_ttl_ms: int = 0,
    force: bool = False,
) -> Call:
    """Up to ``limit`` ids of ``shard`` whose heartbeat is older than
    ``stale_ms``, whose cancel request is older than ``grace_ms``, and that
    are due for an abandon check; with ``watch``, stamp the shard's watch and
    answer no stale or abandoned ids while the shard is in its grace.
    Reply: ``[in grace, stale ids, fence ids, abandon ids]``."""
    shard_keys = [keys.active(shard), keys.cancelling(shard), keys.abandon(shard)]
    if watch:
        shard_keys.append(keys.watch(shard))
    return Call(
        "stale_ids",
        shard_keys,
        [stale_ms, limit, gap_ms, watch_ttl_ms, int(force), grace_ms],
    )


def claim(keys: Keys, stream_id: str, *, token: str) -> Call:
    """Give the write lease to ``token``; reply: ``[seq, cancel request or
    None]``, or a negative :class:`Status`."""
    return Call(
        "claim", [keys.stream(stream_id), keys.active_of(stream_id)], [stream_id, token]
    )


def append(
    keys: Keys,
    stream_id: str,
    *,
    token: str,
    seq: int,
    events: Sequence[tuple[str, str]],
    max_events: int,
    cancelling: bool = False,
) -> Call:
    """Log and announce ``events`` (each a type and its JSON data), numbered
    from ``seq``, in one message; reply: ``[Status, last id]`` (or the logged
    seq after :attr:`Status.BEHIND`). Once a cancel was asked for, only a
    producer ``cancelling`` (about to end the stream so) still writes."""
    ending = StreamState.CANCELLED.value if cancelling else ""
    argv: list[Any] = [token, seq, len(events), ending, max_events]
    argv.append(keys.channel(stream_id))
    for event_type, data_json in events:
        argv += (event_type, data_json)
    return Call("append", [keys.stream(stream_id), keys.log(stream_id)], argv)


def snapshot(
    keys: Keys, stream_id: str, *, token: str, seq: int, data_json: str
) -> Call:
    """Store the producer's snapshot of the stream as of event ``seq`` (the
    last logged). Reply: ``[Status, id of event seq]`` (or the logged seq
    after :attr:`Status.BEHIND`)."""
    return Call(
        "snapshot",
        [keys.stream(stream_id), keys.snapshot(stream_id)],
        [token, seq, data_json],
    )


def finish(
    keys: Keys,
    stream_id: str,
    *,
    state: StreamState,
    event_type: str,
    data_json: str,
    max_events: int,
    completion_ttl_ms: int,
    token: str = "",
    seq: int = 0,
    stale_ms: int = 0,
    grace_ms: int = 0,
    request_json: str = "",
    watch: bool = False,
) -> Call:
    """The terminal write, by a producer (``token``) or by the guardian (no
    token: only if still stale by ``stale_ms`` and, with ``watch``, past the
    shard's grace, or if a cancel is older than ``grace_ms``). A stream asked
    to cancel ends ``cancelled`` (``request_json``: the request a producer's
    own cancel stands for). Reply: ``[Status, id, user, state]``."""
    shard = keys.shard(stream_id)
    stream_keys = [
        keys.stream(stream_id),
        keys.log(stream_id),
        keys.completion(stream_id),
        keys.active(shard),
        keys.cancelling(shard),
        keys.abandon(shard),
        keys.snapshot(stream_id),
    ] + ([keys.watch(shard)] if watch else [])
    return Call(
        "finish",
        stream_keys,
        [
            token, seq, event_type, data_json, max_events, keys.channel(stream_id),
            completion_ttl_ms, stale_ms, state.value, stream_id, grace_ms,
            request_json,
        ],
    )  # fmt: skip


def cancel(keys: Keys, stream_id: str, *, request_json: str, stale_ms: int) -> Call:
    """Ask an active stream to stop (the first request is kept) and tell its
    producer; reply ``[1 asked now | 0 before, 1 producer looks dead]``, or
    ``[ENDED, state]`` / ``[MISSING]``."""
    return Call(
        "cancel",
        [keys.stream(stream_id), keys.cancelling(keys.shard(stream_id))],
        [request_json, keys.control(stream_id), stream_id, stale_ms],
    )


def abandon(keys: Keys, stream_id: str, *, lease_ms: int) -> Call:
    """Check whether a stream due for it is abandoned; reply 1 if so."""
    return Call(
        "abandon",
        [
            keys.stream(stream_id),
            keys.stream_connections(stream_id),
            keys.abandon(keys.shard(stream_id)),
        ],
        [stream_id, lease_ms],
    )


def leave(keys: Keys, stream_id: str, *, lease: str) -> Call:
    """Give a connection's lease back from its stream (noting the time for
    an abandon check)."""
    return Call(
        "leave",
        [keys.stream_connections(stream_id), keys.stream(stream_id)],
        [lease],
    )


def lead(keys: Keys, *, token: str, ttl_ms: int) -> Call:
    """Take or renew the guardian's leader lock; reply 1 if ``token`` leads."""
    return Call("lead", [keys.guardian_leader], [token, ttl_ms])


def release(keys: Keys, *, token: str) -> Call:
    """Give the leader lock up if ``token`` holds it."""
    return Call("release", [keys.guardian_leader], [token])


def record_sweep(
    keys: Keys, *, worker: str, orphaned: int, pruned: int, ms: int
) -> Call:
    """Count a sweep and record what it did; reply: its number."""
    return Call(
        "record_sweep",
        [keys.guardian_sweeps, keys.guardian_last],
        [worker, orphaned, pruned, ms],
    )
