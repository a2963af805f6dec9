"""A reconnect storm: every client of many live streams reconnects at once
with its Last-Event-ID, as after a worker restart.

``streams`` streams of ours, each followed by ``per_stream`` clients (the load
client's process; the producers in theirs). First the clients connect without
a cursor while each stream holds a few tokens (the *first connect*); then they
all drop, more tokens are sent while they are away, and they all reconnect at
once with their Last-Event-ID (the *storm*). Measured: seconds until every
client holds every token of its stream, connections refused or answered other
than 200, tokens lost or doubled across the reconnect, and Redis commands per
reconnect (``INFO commandstats``; the producers are idle meanwhile).
"""

from __future__ import annotations

import time
from typing import Any

from bench.llm import Producers, commands
from bench.rig import LoadClient, Server
from harness.redis_server import RedisServer


def storm(
    server: Any, client: Any, redis: RedisServer, streams: int, per_stream: int
) -> dict[str, Any]:
    """One storm on ``server`` (ours)."""
    producers = Producers()
    rc = redis.client()
    try:
        opened = producers.call(cmd="open", server="ours", n=streams,
                                redis_url=redis.url, coalesce_ms=0)  # fmt: skip
        paths = [path for path in opened["paths"] for _ in range(per_stream)]
        sent = producers.call(cmd="run", seconds=0.1, rate=50)["sent"]
        targets = [sent[i // per_stream] - 1 for i in range(len(paths))]
        started = time.time()
        before = commands(rc)
        client.call(cmd="follow", port=server.port, paths=paths, cookie=server.cookie)
        first = client.call(cmd="caught_up", targets=targets, since=started, seconds=60)
        first_commands = commands(rc) - before
        client.call(cmd="drop")
        sent = producers.call(cmd="run", seconds=0.1, rate=50)["sent"]  # missed
        targets = [sent[i // per_stream] - 1 for i in range(len(paths))]
        time.sleep(1.0)  # the server has let go of the dropped connections
        before = commands(rc)
        started = client.call(cmd="rejoin", port=server.port, paths=paths,
                              cookie=server.cookie)["started"]  # fmt: skip
        again = client.call(cmd="caught_up", targets=targets, since=started, seconds=60)
        storm_commands = commands(rc) - before
        stats = client.call(cmd="follow_stats")
        producers.call(cmd="finish")
    finally:
        client.call(cmd="close")
        producers.stop()
    clients = len(paths)
    return {
        "clients": clients,
        "streams": streams,
        "first_s": first["seconds"],
        "storm_s": again["seconds"],
        "errors": stats["errors"],
        "lost": sum(skipped for _, _, _, skipped, _ in stats["conns"]),
        "doubled": sum(twice for _, _, twice, _, _ in stats["conns"]),
        "first_commands_per_client": first_commands / clients,
        "storm_commands_per_client": storm_commands / clients,
    }


def _s(seconds: float | None) -> str:
    return "not within 60 s" if seconds is None else f"{seconds:.2f}"


def _c(r: dict[str, Any], which: str) -> str:
    return f"{r[f'{which}_commands_per_client']:.1f}"


def storm_section(r: dict[str, Any]) -> str:
    """The benchmark page's section for :func:`storm`'s result."""
    return f"""
## Reconnect storm

`bench/storm.py`: {r["streams"]:,} live streams of ours, {r["clients"]:,} clients
({r["clients"] // r["streams"]} per stream) in the load client's process, one
gevent worker. *First connect*: every client connects without a cursor while
its stream holds a few tokens. *Storm*: every client drops, more tokens are
sent meanwhile, and all reconnect at once with their Last-Event-ID, as after a
worker restart.

| | first connect | storm |
| --- | ---: | ---: |
| every client holds every token, s | {_s(r["first_s"])} | {_s(r["storm_s"])} |
| Redis commands per client (in scripts too) | {_c(r, "first")} | {_c(r, "storm")} |

Errors (refused, or answered other than 200): {r["errors"]}; tokens lost
across the reconnect: {r["lost"]}; doubled: {r["doubled"]}. A reconnect costs
two round trips: admission (the record, the user's and the stream's
connection leases, in one script) and the join with the first page of the
log after its id (one pipeline).
"""


def main() -> None:
    import json

    redis = RedisServer().start()
    client = LoadClient()
    server = Server("ours", redis)
    server.start()
    try:
        print(json.dumps(storm(server, client, redis, 500, 10)))
    finally:
        server.stop()
        client.stop()
        redis.cleanup()


if __name__ == "__main__":
    main()
