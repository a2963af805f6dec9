"""The Lua scripts' sources (``lua/*.lua`` with the field names filled in)
and :class:`Scripts`, which loads them into Redis and runs them; the builders
of each call are in :mod:`~flask_sse_resilience.scripts`."""

from __future__ import annotations

import string
from functools import cache
from importlib import resources
from typing import Any, NamedTuple

from .models import CompletionField, EntryField, RecordField
from .redisutil import (
    LUA_NOW,
    REPLICA_WAIT_MS,
    LuaScript,
    RedisClient,
    is_cluster,
    is_sentinel,
    run_pipeline,
    script,
)


def _fields() -> dict[str, str]:
    names = {f.name: f.value for f in RecordField}
    names.update({f"C_{f.name}": f.value for f in CompletionField})
    names.update({f.name: f.value for f in CompletionField if f.name not in names})
    names.update({f"E_{f.name}": f.value for f in EntryField})
    return names


def _read(name: str) -> str:
    lua = resources.files(__package__ or "flask_sse_resilience") / "lua"
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
        wait through :func:`~flask_sse_resilience.redisutil.wait_for_replica`).
        """
        if not is_sentinel(self.client):
            return self.run(call)

        def build(pipe: Any) -> None:
            self.queue(pipe, call)
            pipe.execute_command("WAIT", 1, REPLICA_WAIT_MS)

        return run_pipeline(self.client, build)[0]

    def queue(self, pipe: Any, call: Call) -> None:
        """Queue one call on ``pipe`` (see
        :func:`~flask_sse_resilience.redisutil.run_pipeline`)."""
        self._script(call.script).queue(pipe, call.keys, call.args)

    def run_many(self, calls: list[Call], *, partial: bool = False) -> list[Any]:
        """Run calls of one script in one pipelined round trip (per node);
        see :meth:`~flask_sse_resilience.redisutil.LuaScript.run_many`."""
        if not calls:
            return []
        names = {call.script for call in calls}
        if len(names) != 1:
            raise ValueError(f"run_many takes calls of one script, not {names}")
        return self._script(calls[0].script).run_many(
            [(call.keys, call.args) for call in calls], partial=partial
        )
