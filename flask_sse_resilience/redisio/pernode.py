"""Pipelines split by cluster node, so one node in trouble fails only its own
calls.

A cluster pipeline that meets a dead, paused or failing-over node can fail as
a whole, or run late for every node. For the writes that keep streams alive
(heartbeats, lease renewals) and the guardian's look at each shard, that would
let one node's outage stop writes on healthy nodes while the guardian, which
may reach them, judges their streams: a false orphan. So on a cluster such
calls go out as one pipeline per node, all nodes at once (a thread, or a
greenlet under gevent, per node), and each call's reply or error is kept.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger(__name__)

#: Queues call ``i`` on a pipeline: ``queue_call(pipe, i)``.
QueueCall = Callable[[Any, int], None]


def run_per_node(
    client: Any,
    keys: Sequence[str],
    queue_call: QueueCall,
    run: Callable[[Callable[[Any], None], Any], list[Any]],
) -> list[Any]:
    """Queue call ``i`` (whose first key is ``keys[i]``) with
    ``queue_call(pipe, i)``, one pipeline per node of ``client`` (a
    ``RedisCluster``), run each with ``run(build, node)`` (``build(pipe)``
    queues the node's calls); return every call's reply, or the exception its
    node's pipeline raised, in the order of ``keys``."""
    groups: dict[str, list[int]] = {}
    nodes: dict[str, Any] = {}
    replies: list[Any] = [None] * len(keys)
    for i, key in enumerate(keys):
        try:
            node = client.get_node_from_key(key)
        except Exception as exc:  # noqa: BLE001 - a hole in the slot map
            replies[i] = exc
            continue
        groups.setdefault(node.name, []).append(i)
        nodes[node.name] = node

    def one(name: str, indices: list[int]) -> None:
        def queue(pipe: Any) -> None:
            for i in indices:
                queue_call(pipe, i)

        try:
            out = run(queue, nodes[name])
        except Exception as exc:  # noqa: BLE001 - kept for the caller
            out = [exc] * len(indices)
        for i, reply in zip(indices, out, strict=True):
            replies[i] = reply

    if len(groups) == 1:
        one(*next(iter(groups.items())))
        _refresh_if_failed(client, replies)
        return replies
    threads = [
        threading.Thread(target=one, args=item, daemon=True) for item in groups.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _refresh_if_failed(client, replies)
    return replies


def _refresh_if_failed(client: Any, replies: list[Any]) -> None:
    """After a node failed, read the cluster's slot map again, so the next
    call goes to whichever node serves those slots now (redis-py refreshes a
    pipeline's map only every few errors)."""
    if any(isinstance(reply, Exception) for reply in replies):
        try:
            client.nodes_manager.initialize()
        except Exception:  # noqa: BLE001 - the next call tries again
            log.debug("refreshing the cluster's slot map failed", exc_info=True)
