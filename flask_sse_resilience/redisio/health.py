"""``flask sse check``: whether the app's Redis can run streams.

Four checks, each one :class:`Finding`:

- **reachable**: a ``PING`` answers (through the sentinels, or any cluster
  node, for those URLs);
- **version**: every master runs at least :data:`MINIMUM` (Redis 6.2: the
  log is read with exclusive ranges, ``XRANGE key (id +``), and on a Redis
  Cluster at least :data:`MINIMUM_CLUSTER` (7.0: sharded pub/sub,
  ``SSUBSCRIBE``/``SPUBLISH``, carries each stream's announcements);
- **writable**: a throwaway key under the key prefix is set, read back and
  deleted on every master (a replica refuses: ``READONLY``);
- **eviction**: ``maxmemory-policy``. Every key of a stream (record, log,
  terminal event) carries a TTL, so both ``allkeys-*`` and ``volatile-*``
  policies may evict a live stream once memory is full; ``noeviction`` makes
  a full Redis refuse writes instead (requests get 503
  ``redis_out_of_memory``, producers' sends fail) and loses nothing. Without
  ``maxmemory`` nothing is evicted at all.

A failed check is ``fail`` (the command exits 1); a risky setting is
``warn``. The eviction check also runs once in each process that starts
background work (:func:`warn_if_evicting`), so a risky policy is in the log
even if nobody runs the command.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any, Protocol

from redis import exceptions as rx

from . import memory
from .commands import RedisClient, is_cluster
from .failures import UNAVAILABLE
from .target import Target, explain

log = logging.getLogger(__name__)

#: The oldest Redis the package runs on.
MINIMUM = (6, 2)
#: The oldest Redis Cluster the package runs on.
MINIMUM_CLUSTER = (7, 0)

#: Seconds the throwaway key lives should its delete not land.
_PROBE_TTL_MS = 10_000


class ProbeKeys(Protocol):
    """Where the writable check may write (the app's
    :class:`~flask_sse_resilience.store.keys.Keys`)."""

    @property
    def prefix(self) -> str:
        """The prefix of every key the app writes."""

    def check(self, tag: str) -> str:
        """A throwaway key whose cluster slot ``tag`` picks."""


@dataclasses.dataclass(frozen=True)
class Finding:
    """The outcome of one check."""

    #: ``ok``, ``warn`` or ``fail``.
    level: str
    #: What was checked: ``reachable``, ``version``, ``writable``, ``eviction``.
    name: str
    #: One line saying what was found and, if it is not ok, what to do.
    text: str


def run_checks(client: RedisClient, keys: ProbeKeys, target: Target) -> list[Finding]:
    """Check the Redis behind ``client``; stop after ``reachable`` if it is
    not. Never raises a Redis error: each becomes a failed finding."""
    started = time.perf_counter()
    try:
        client.ping()
    except rx.RedisError as exc:
        return [Finding("fail", "reachable", explain(exc, target))]
    ms = (time.perf_counter() - started) * 1000
    found = [Finding("ok", "reachable", f"{target}, PING {ms:.1f} ms")]
    for name, check in (
        ("version", _version),
        ("writable", _writable),
        ("eviction", _eviction),
    ):
        try:
            found.append(check(client, keys, target))
        except rx.RedisError as exc:
            found.append(Finding("fail", name, explain(exc, target)))
    return found


def version_finding(versions: dict[str, str], cluster: bool) -> Finding:
    """The ``version`` finding for each master's ``redis_version``."""
    need = MINIMUM_CLUSTER if cluster else MINIMUM
    wanted = ".".join(map(str, need))
    old = {node: v for node, v in versions.items() if _parse(v) < need}
    if old:
        which = ", ".join(f"{v} at {node}" for node, v in sorted(old.items()))
        kind = "a Redis Cluster" if cluster else "Redis"
        return Finding("fail", "version", f"{kind} {wanted} or newer is needed, "
                       f"found {which}; upgrade Redis")  # fmt: skip
    shown = ", ".join(sorted(set(versions.values())))
    return Finding("ok", "version", f"Redis {shown} (needs {wanted} or newer)")


def eviction_finding(policies: dict[str, tuple[str, int]]) -> Finding:
    """The ``eviction`` finding for each master's ``(maxmemory-policy,
    maxmemory)``."""
    risky = {
        node: policy
        for node, (policy, maxmemory) in policies.items()
        if maxmemory and policy != "noeviction"
    }
    if risky:
        which = ", ".join(sorted(set(risky.values())))
        return Finding(
            "warn",
            "eviction",
            f"maxmemory-policy {which} can evict live streams when memory is "
            "full, and their followers then end failed (lost) mid-stream "
            "(each stream's keys carry a TTL, so volatile-* policies can "
            "too); set maxmemory-policy noeviction: a full Redis then refuses "
            "writes (answered 503 redis_out_of_memory) and loses nothing",
        )
    if all(not maxmemory for _, maxmemory in policies.values()):
        policy = ", ".join(sorted({p for p, _ in policies.values()}))
        return Finding("ok", "eviction", f"no maxmemory set: nothing is evicted "
                       f"(maxmemory-policy {policy})")  # fmt: skip
    return Finding("ok", "eviction", "maxmemory-policy noeviction: nothing is "
                   "evicted; a full Redis refuses writes")  # fmt: skip


def _parse(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split(".")[:2]:
        digits = "".join(c for c in part if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def _infos(client: RedisClient) -> dict[str, dict[str, Any]]:
    """``INFO`` of every master, by node name (the target alone off a cluster)."""
    if is_cluster(client):
        replies = client.info(target_nodes=client.PRIMARIES)  # type: ignore[union-attr]
        return {str(node): dict(reply) for node, reply in replies.items()}
    return {"master": dict(client.info())}


def _version(client: RedisClient, keys: ProbeKeys, target: Target) -> Finding:
    infos = _infos(client)
    versions = {
        node: str(info.get("redis_version", "0")) for node, info in infos.items()
    }
    return version_finding(versions, is_cluster(client))


def _eviction(client: RedisClient, keys: ProbeKeys, target: Target) -> Finding:
    return eviction_check(client)


def eviction_check(client: RedisClient) -> Finding:
    """The ``eviction`` finding of the Redis behind ``client``, read with
    ``INFO memory`` on every master (see
    :mod:`~flask_sse_resilience.redisio.memory`)."""
    nodes = memory.read(client)
    return eviction_finding({n.node: (n.policy, n.maxmemory) for n in nodes})


#: Tries of :func:`warn_if_evicting` while Redis is unavailable, and the
#: first pause between them (doubled each time): about a minute in all.
_START_TRIES, _START_PAUSE = 7, 1.0


def warn_if_evicting(client: RedisClient, target: Target) -> Finding | None:
    """The eviction check, run once when a process starts background work:
    log its finding as a warning if it is one (an ``allkeys-*`` or
    ``volatile-*`` policy with ``maxmemory`` set), say nothing otherwise.

    One ``INFO memory`` per master. Refused (``INFO`` renamed, or denied by
    an ACL, as on some managed services): a debug line and nothing else.
    Redis unavailable: tried again for about a minute, then given up at
    debug level. Returns the finding, or None if it could not be read.
    """
    pause = _START_PAUSE
    for attempt in range(_START_TRIES):
        try:
            found = eviction_check(client)
        except UNAVAILABLE as exc:
            if attempt == _START_TRIES - 1:
                log.debug("eviction policy not checked, Redis unavailable: %s", exc)
                return None
            time.sleep(pause)
            pause *= 2
        except rx.RedisError as exc:
            log.debug("eviction policy not checked, INFO refused: %s", exc)
            return None
        except Exception:  # noqa: BLE001 - a start-up check must not break anything
            log.debug("eviction policy not checked", exc_info=True)
            return None
        else:
            if found.level == "warn":
                log.warning("Redis at %s: %s", target, found.text)
            return found
    return None


def _writable(client: RedisClient, keys: ProbeKeys, target: Target) -> Finding:
    token = secrets.token_hex(8)
    probes = [keys.check(tag) for tag in _tags(client)]
    for key in probes:
        client.set(key, token, px=_PROBE_TTL_MS)
        read = client.get(key)
        client.delete(key)
        if read not in (token, token.encode()):
            return Finding("fail", "writable", f"wrote {key} but read back {read!r}")
    where = f"{len(probes)} masters" if len(probes) > 1 else "the master"
    return Finding("ok", "writable", f"set, read and deleted a key under "
                   f"{keys.prefix!r} on {where}")  # fmt: skip


def _tags(client: RedisClient) -> list[str]:
    """Hash tags whose keys land on each master (one tag off a cluster)."""
    if not is_cluster(client):
        return ["check"]
    node_of: Callable[[str], Any] = client.get_node_from_key  # type: ignore[union-attr]
    masters = {node.name for node in client.get_primaries()}  # type: ignore[union-attr]
    tags: dict[str, str] = {}
    for i in range(100_000):
        tag = f"check{i}"
        node = node_of("{" + tag + "}").name
        if node in masters:
            tags.setdefault(node, tag)
        if len(tags) == len(masters):
            break
    return list(tags.values())
