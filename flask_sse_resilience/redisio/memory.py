"""How full the app's Redis is: ``used_memory``, ``maxmemory`` and
``maxmemory-policy`` of every master, read with one ``INFO memory`` per
master (``INFO``, not ``CONFIG GET``: managed services that disable
``CONFIG`` still answer it).

Read by the outage log while Redis refuses writes (to name the limit and to
see when it accepts them again; see :mod:`~flask_sse_resilience.redisio.outages`),
the eviction-policy check at start (see
:mod:`~flask_sse_resilience.redisio.health`), the dashboard and the metrics.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from .commands import RedisClient, is_cluster


@dataclasses.dataclass(frozen=True)
class NodeMemory:
    """One master's memory, as its ``INFO memory`` said."""

    #: ``host:port`` on a cluster, else ``"master"``.
    node: str
    #: ``used_memory``, in bytes.
    used: int
    #: ``maxmemory`` in bytes; 0 when there is no limit.
    maxmemory: int
    #: ``maxmemory_policy``, say ``noeviction`` or ``allkeys-lru``.
    policy: str
    #: ``mem_not_counted_for_evict``: replication and AOF buffers, which
    #: Redis leaves out when it compares its memory with ``maxmemory``.
    not_counted: int = 0

    @property
    def full(self) -> bool:
        """Whether memory is over ``maxmemory`` by Redis's own measure: under
        ``noeviction`` it refuses writes (``OOM``) while this is true."""
        return bool(self.maxmemory) and self.used - self.not_counted > self.maxmemory

    def as_json(self) -> dict[str, Any]:
        """The dashboard's view of it."""
        return {
            "node": self.node,
            "used": self.used,
            "max": self.maxmemory,
            "policy": self.policy,
            "full": self.full,
        }


def read(client: RedisClient) -> list[NodeMemory]:
    """The memory of every master behind ``client`` (one on a single Redis
    or behind Sentinel), in one round trip per master.

    :raises redis.exceptions.RedisError: Redis unavailable, or ``INFO``
        refused (renamed or denied by an ACL).
    """
    if is_cluster(client):
        replies = client.info("memory", target_nodes=client.PRIMARIES)  # type: ignore[union-attr]
        if not isinstance(next(iter(replies.values()), None), dict):
            replies = {"master": replies}  # a one-node cluster answers flat
        nodes = [_node(str(name), info) for name, info in replies.items()]
        return sorted(nodes, key=lambda n: n.node)
    return [_node("master", client.info("memory"))]


def _node(name: str, info: dict[str, Any]) -> NodeMemory:
    return NodeMemory(
        node=name,
        used=int(info.get("used_memory", 0)),
        maxmemory=int(info.get("maxmemory", 0)),
        policy=str(info.get("maxmemory_policy", "")),
        not_counted=int(info.get("mem_not_counted_for_evict", 0)),
    )


def size(n: float) -> str:
    """``n`` bytes for a reader: ``512 B``, ``3.2 MiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def describe(nodes: Sequence[NodeMemory]) -> str:
    """The limit and policy, as a log line says them: ``maxmemory 4.0 MiB,
    policy noeviction`` (on a cluster, those of the masters that are full,
    named, or of every master if none is)."""
    shown = [n for n in nodes if n.full] or list(nodes)
    parts = []
    for n in shown:
        limit = size(n.maxmemory) if n.maxmemory else "none"
        used = f"{size(n.used)} used of " if n.full else ""
        where = f"{n.node}: " if len(nodes) > 1 else ""
        parts.append(f"{where}{used}maxmemory {limit}, policy {n.policy}")
    return "; ".join(parts)
