"""Every Lua script the package runs, and the one way to call each.

The scripts are the stream aggregate's writes (record, log, completion, active
index and their expiry) and the other atomic steps (leases, the guardian's
lock). Their sources live in ``lua/*.lua`` beside this module, with the
record's field names filled in from :class:`~flask_sse_resilience.models.RecordField`
and its siblings, so a field is named in one place. Each script is called
through a builder here that takes named arguments and returns a :class:`Call`
(the script, its ``KEYS``, its ``ARGV`` and how its reply reads). Each
reply's shape sits beside its builder, typed: an ``IntEnum`` of the script's
statuses, or a ``NamedTuple`` with a field per part. No other module knows a
script's argument order, its status numbers or where a part of its reply
is. :class:`Scripts` loads them into Redis, runs them and reads their replies.
"""

from __future__ import annotations

import dataclasses
import enum
import string
from collections.abc import Callable, Sequence
from functools import cache
from importlib import resources
from typing import Any, Generic, Literal, NamedTuple, TypeVar, overload

from ..models import CompletionField, EntryField, RecordField, StreamState
from ..redisio.commands import (
    LUA_NOW,
    REPLICA_WAIT_MS,
    LuaScript,
    RedisClient,
    as_text,
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


#: What a script's reply reads as.
R = TypeVar("R")


@dataclasses.dataclass(frozen=True)
class Call(Generic[R]):
    """One call of a script: which, its ``KEYS`` and ``ARGV``, and how its
    reply reads (``parse``, the script's reply type)."""

    script: str
    keys: list[str]
    args: list[Any]
    parse: Callable[[Any], R]


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

    def run(self, call: Call[R]) -> R:
        """Run one call; return its reply, read."""
        return call.parse(self._script(call.script)(call.keys, call.args))

    def run_replicated(self, call: Call[R]) -> R:
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

        return call.parse(run_pipeline(self.client, build)[0])

    def queue(self, pipe: Any, call: Call[Any]) -> None:
        """Queue one call on ``pipe`` (see
        :func:`~flask_sse_resilience.redisio.commands.run_pipeline`); read
        its reply with ``call.parse``."""
        self._script(call.script).queue(pipe, call.keys, call.args)

    @overload
    def run_many(
        self, calls: Sequence[Call[R]], *, partial: Literal[False] = False
    ) -> list[R]: ...

    @overload
    def run_many(
        self, calls: Sequence[Call[R]], *, partial: bool
    ) -> list[R | Exception]: ...

    def run_many(
        self, calls: Sequence[Call[R]], *, partial: bool = False
    ) -> list[R] | list[R | Exception]:
        """Run calls of one script in one pipelined round trip (per node);
        return their replies, read (with ``partial``, the exception of a
        call whose node failed); see
        :meth:`~flask_sse_resilience.redisio.commands.LuaScript.run_many`."""
        if not calls:
            return []
        names = {call.script for call in calls}
        if len(names) != 1:
            raise ValueError(f"run_many takes calls of one script, not {names}")
        replies = self._script(calls[0].script).run_many(
            [(call.keys, call.args) for call in calls], partial=partial
        )
        return [
            reply if isinstance(reply, Exception) else call.parse(reply)
            for call, reply in zip(calls, replies, strict=True)
        ]


class Status(enum.IntEnum):
    """The statuses of the stream's writes (the log's, in ``check.lua``;
    ``claim``, ``register`` and ``cancel`` use some of them too)."""

    WRITTEN = 1
    #: Already written: a retried call, acknowledged without writing;
    #: (``register``) the id is taken; (``cancel``) asked before.
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

    @classmethod
    def parse(cls, reply: Any) -> Added:
        """The reply of a :func:`capped_add` call."""
        return cls(int(reply))


# -- builders: one per script, each beside the shape of its reply ------------


def _int(reply: Any) -> int:
    return int(reply)


def _bool(reply: Any) -> bool:
    return bool(int(reply))


def capped_add(
    key: str, member: str, *, ttl_ms: int, limit: int = 0, must_exist: str = ""
) -> Call[Added]:
    """Add (or refresh) ``member`` in the capped expiring set ``key`` unless
    it holds ``limit`` members already (0: no limit) or ``must_exist`` is
    given and missing; reply: :class:`Added`."""
    keys = [key, must_exist] if must_exist else [key]
    return Call("capped_add", keys, [member, limit, ttl_ms], Added.parse)


def renew(key: str, member: str, *, ttl_ms: int) -> Call[int]:
    """Renew a member of a capped set that is still there; reply 1."""
    return Call("renew", [key], [member, ttl_ms], _int)


class Registered(NamedTuple):
    """Reply of :func:`register`."""

    #: ``WRITTEN``: the record is made; ``DUPLICATE``: the id is taken;
    #: ``KEY_TAKEN``: the key names another stream. Nothing is written
    #: unless ``WRITTEN``.
    status: Status
    #: (``KEY_TAKEN``) the stream the key names.
    holder: str = ""
    #: (``KEY_TAKEN``) the holder is the stream expected and it is active;
    #: False when the pointer moved (ask again, expecting the holder).
    holder_active: bool = False

    @classmethod
    def parse(cls, reply: Any) -> Registered:
        """The reply of a :func:`register` call."""
        code = int(reply[0])
        if code > 0:  # the start time
            return cls(Status.WRITTEN)
        if code == 0:
            return cls(Status.DUPLICATE)
        state = as_text(reply[2])
        return cls(Status(code), as_text(reply[1]), state == StreamState.ACTIVE.value)


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
) -> Call[Registered]:
    """Create an active record (with ``key``: only if the key names no other
    active stream, the one ``expected`` included); reply: :class:`Registered`."""
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
        Registered.parse,
    )  # fmt: skip


def _optional(value: int | None) -> str | int:
    return "" if value is None else value


class Beat(enum.IntEnum):
    """Replies of :func:`heartbeat` (false for ``ENDED``)."""

    ENDED = 0
    ALIVE = 1
    CANCELLING = 2

    @classmethod
    def parse(cls, reply: Any) -> Beat:
        """The reply of a :func:`heartbeat` call."""
        return cls(int(reply))


def heartbeat(keys: Keys, stream_id: str) -> Call[Beat]:
    """Refresh an active stream's heartbeat; reply: :class:`Beat` (a stream
    gone or ended leaves the active index; if gone, its followers are told)."""
    return Call(
        "heartbeat",
        [keys.stream(stream_id), keys.active_of(stream_id)],
        [stream_id, keys.channel(stream_id)],
        Beat.parse,
    )


class Stale(NamedTuple):
    """Reply of :func:`stale_ids`: the ids of one shard to look at."""

    #: The shard is in its grace after a gap in its sweeps (no stale or
    #: abandon ids then).
    in_grace: bool
    #: Heartbeat older than ``stale_ms``.
    stale: list[str]
    #: Cancel request older than ``grace_ms``: to fence.
    fence: list[str]
    #: Due for an abandon check.
    abandon: list[str]

    @classmethod
    def parse(cls, reply: Any) -> Stale:
        """The reply of a :func:`stale_ids` call."""
        in_grace, stale, fence, abandon = reply
        return cls(
            bool(int(in_grace)),
            [as_text(member) for member in stale],
            [as_text(member) for member in fence],
            [as_text(member) for member in abandon],
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
) -> Call[Stale]:
    """Up to ``limit`` ids of ``shard`` whose heartbeat is older than
    ``stale_ms``, whose cancel request is older than ``grace_ms``, and that
    are due for an abandon check; with ``watch``, stamp the shard's watch and
    answer no stale or abandoned ids while the shard is in its grace.
    Reply: :class:`Stale`."""
    shard_keys = [keys.active(shard), keys.cancelling(shard), keys.abandon(shard)]
    if watch:
        shard_keys.append(keys.watch(shard))
    return Call(
        "stale_ids",
        shard_keys,
        [stale_ms, limit, gap_ms, watch_ttl_ms, int(force), grace_ms],
        Stale.parse,
    )


class Claimed(NamedTuple):
    """Reply of :func:`claim`."""

    #: ``WRITTEN``: the lease is this producer's; else ``ENDED``, ``MISSING``
    #: or ``CANCELLED`` (it ended cancelled).
    status: Status
    #: (``WRITTEN``) the number of the last event logged.
    seq: int = 0
    #: (``WRITTEN``) a cancel request made before (JSON), or "".
    request_json: str = ""

    @classmethod
    def parse(cls, reply: Any) -> Claimed:
        """The reply of a :func:`claim` call."""
        if not isinstance(reply, list):
            return cls(Status(int(reply)))
        return cls(Status.WRITTEN, int(reply[0]), as_text(reply[1]) if reply[1] else "")


def claim(keys: Keys, stream_id: str, *, token: str) -> Call[Claimed]:
    """Give the write lease to ``token``; reply: :class:`Claimed`."""
    return Call(
        "claim",
        [keys.stream(stream_id), keys.active_of(stream_id)],
        [stream_id, token],
        Claimed.parse,
    )


class Written(NamedTuple):
    """Reply of the log's writes, :func:`append`, :func:`snapshot` and
    :func:`finish` (see ``check.lua``)."""

    status: Status
    #: (``WRITTEN``) the id of the (last) event written, or for a snapshot the
    #: one it covers; (``DUPLICATE``) of the last event logged.
    event_id: str = ""
    #: (``WRITTEN`` by :func:`finish`, or ``DUPLICATE``) the stream's owner;
    #: else None.
    user_id: str | None = None
    #: (:func:`finish`, ``WRITTEN``) the state written.
    state: StreamState | None = None
    #: (``CANCELLED``) the cancel request (JSON), or "" when unknown.
    request_json: str = ""
    #: (``BEHIND``) the number of the last event the log has.
    logged: int = 0

    @classmethod
    def parse(cls, reply: Any) -> Written:
        """The reply of an :func:`append`, :func:`snapshot` or :func:`finish`
        call."""
        status = Status(int(reply[0]))
        second = reply[1] if len(reply) > 1 else None
        if status is Status.CANCELLED:
            return cls(status, request_json=as_text(second) if second else "")
        if status is Status.BEHIND:
            return cls(status, logged=int(second or 0))
        return cls(
            status,
            event_id=as_text(second) if second is not None else "",
            user_id=as_text(reply[2]) if len(reply) > 2 else None,
            state=StreamState(as_text(reply[3])) if len(reply) > 3 else None,
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
) -> Call[Written]:
    """Log and announce ``events`` (each a type and its JSON data), numbered
    from ``seq``, in one message; reply: :class:`Written`. Once a cancel was
    asked for, only a producer ``cancelling`` (about to end the stream so)
    still writes."""
    ending = StreamState.CANCELLED.value if cancelling else ""
    argv: list[Any] = [token, seq, len(events), ending, max_events]
    argv.append(keys.channel(stream_id))
    for event_type, data_json in events:
        argv += (event_type, data_json)
    return Call(
        "append", [keys.stream(stream_id), keys.log(stream_id)], argv, Written.parse
    )


def snapshot(
    keys: Keys, stream_id: str, *, token: str, seq: int, data_json: str
) -> Call[Written]:
    """Store the producer's snapshot of the stream as of event ``seq`` (the
    last logged). Reply: :class:`Written` (the id of event ``seq``)."""
    return Call(
        "snapshot",
        [keys.stream(stream_id), keys.snapshot(stream_id)],
        [token, seq, data_json],
        Written.parse,
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
) -> Call[Written]:
    """The terminal write, by a producer (``token``) or by the guardian (no
    token: only if still stale by ``stale_ms`` and, with ``watch``, past the
    shard's grace, or if a cancel is older than ``grace_ms``). A stream asked
    to cancel ends ``cancelled`` (``request_json``: the request a producer's
    own cancel stands for). Reply: :class:`Written`."""
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
        Written.parse,
    )  # fmt: skip


class Asked(NamedTuple):
    """Reply of :func:`cancel`."""

    #: ``WRITTEN``: asked now; ``DUPLICATE``: asked before; ``ENDED``: it had
    #: ended (nothing written); ``MISSING``: no such stream.
    status: Status
    #: (asked) its producer looks dead: no heartbeat for ``stale_ms``.
    producer_dead: bool = False
    #: (``ENDED``) the state it ended in.
    state: StreamState | None = None

    @classmethod
    def parse(cls, reply: Any) -> Asked:
        """The reply of a :func:`cancel` call."""
        status = Status(int(reply[0]))
        if status is Status.ENDED:
            return cls(status, state=StreamState(as_text(reply[1])))
        if status is Status.MISSING:
            return cls(status)
        return cls(status, producer_dead=bool(int(reply[1])))


def cancel(
    keys: Keys, stream_id: str, *, request_json: str, stale_ms: int
) -> Call[Asked]:
    """Ask an active stream to stop (the first request is kept) and tell its
    producer; reply: :class:`Asked`."""
    return Call(
        "cancel",
        [keys.stream(stream_id), keys.cancelling(keys.shard(stream_id))],
        [request_json, keys.control(stream_id), stream_id, stale_ms],
        Asked.parse,
    )


def abandon(keys: Keys, stream_id: str, *, lease_ms: int) -> Call[bool]:
    """Check whether a stream due for it is abandoned; reply True if so."""
    return Call(
        "abandon",
        [
            keys.stream(stream_id),
            keys.stream_connections(stream_id),
            keys.abandon(keys.shard(stream_id)),
        ],
        [stream_id, lease_ms],
        _bool,
    )


def leave(keys: Keys, stream_id: str, *, lease: str) -> Call[int]:
    """Give a connection's lease back from its stream (noting the time for
    an abandon check); reply 1."""
    return Call(
        "leave",
        [keys.stream_connections(stream_id), keys.stream(stream_id)],
        [lease],
        _int,
    )


def lead(keys: Keys, *, token: str, ttl_ms: int) -> Call[bool]:
    """Take or renew the guardian's leader lock; reply True if ``token`` leads."""
    return Call("lead", [keys.guardian_leader], [token, ttl_ms], _bool)


def release(keys: Keys, *, token: str) -> Call[bool]:
    """Give the leader lock up if ``token`` holds it; reply True if it did."""
    return Call("release", [keys.guardian_leader], [token], _bool)


def record_sweep(
    keys: Keys, *, worker: str, orphaned: int, pruned: int, ms: int
) -> Call[int]:
    """Count a sweep and record what it did; reply: its number."""
    return Call(
        "record_sweep",
        [keys.guardian_sweeps, keys.guardian_last],
        [worker, orphaned, pruned, ms],
        _int,
    )
