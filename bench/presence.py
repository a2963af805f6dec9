"""The cost of the presence check, per worker per heartbeat interval.

One process (a worker) follows ``streams`` streams with ``followers``
followers in all, on a private redis-server; its broker's presence check
(:mod:`flask_sse_resilience.serve.presence`) runs ``rounds`` times. Per check it
reports the round trips (sends counted on the connection), the Redis commands
(``INFO commandstats``), the worker's CPU time (``time.process_time``), the
wall time, and the Redis server's CPU time. For contrast, the same figures
for what a check *per follower* at each keep-alive would cost (one ``HGETALL``
of its record each, pipelined as generously as possible: one pipeline for
all, which a follower on its own could not do).

``python -m bench.presence`` prints a Markdown table; nothing asserts on it.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import redis

from flask_sse_resilience.serve.broker import Broker
from flask_sse_resilience.serve.presence import PresenceCheck
from flask_sse_resilience.store.completion import CompletionStore
from flask_sse_resilience.store.eventlog import EventLog
from flask_sse_resilience.store.keys import Keys
from flask_sse_resilience.store.registry import StreamRegistry
from harness.redis_server import RedisServer
from harness.roundtrips import CountingConnection, counting_client
from harness.seeding import fill

KEYS = Keys("sse:")

#: (streams followed, followers in all) per row.
SIZES = [(1, 1), (100, 100), (1_000, 1_000), (1_000, 10_000), (10_000, 10_000)]


def _server_cpu(client: redis.Redis) -> float:
    cpu = client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def _commands(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


def _measure(
    client: redis.Redis, rounds: int, run: Callable[[], Any]
) -> dict[str, float]:
    run()  # warm: scripts, connections
    sends, commands = CountingConnection.sends, _commands(client)
    cpu, server, wall = time.process_time(), _server_cpu(client), time.perf_counter()
    for _ in range(rounds):
        run()
    wall = time.perf_counter() - wall
    cpu = time.process_time() - cpu
    server = _server_cpu(client) - server
    return {
        "round trips": (CountingConnection.sends - sends) / rounds,
        # The commandstats reads between count too: two per measurement.
        "commands": (_commands(client) - commands - 1) / rounds,
        "worker cpu ms": cpu / rounds * 1000,
        "wall ms": wall / rounds * 1000,
        "redis cpu ms": server / rounds * 1000,
    }


Row = tuple[int, int, dict[str, float], dict[str, float]]


def _size(server: RedisServer, streams: int, followers: int, rounds: int) -> Row:
    """Measure one size: (streams, followers, the check, per follower)."""
    admin = server.client()
    admin.flushall()
    fill(admin, streams, stale_every=10**9)
    client = counting_client(server.port)
    registry = StreamRegistry(client, KEYS, stream_ttl=3600)
    presence = PresenceCheck(
        registry,
        EventLog(client, KEYS, max_events=100, completion_ttl=60),
        CompletionStore(client, KEYS, ttl=60),
        interval=3600,  # the loop never runs: we call the check
    )
    broker = Broker(server.client(), KEYS, buffer=16, presence=presence)
    subs = [broker.subscribe(f"s{i % streams}") for i in range(followers)]
    try:
        admin.config_resetstat()
        check = _measure(admin, rounds, lambda: presence.check(broker.timelines()))

        def per_follower() -> None:
            pipe = client.pipeline(transaction=False)
            for sub in subs:
                pipe.hgetall(KEYS.stream(sub.stream_id))
            pipe.execute()

        return streams, followers, check, _measure(admin, rounds, per_follower)
    finally:
        for sub in subs:
            broker.unsubscribe(sub)
        broker.stop()
        client.close()


def run(rounds: int) -> list[Row]:
    """Measure every size in :data:`SIZES`."""
    server = RedisServer().start()
    try:
        return [_size(server, s, f, rounds) for s, f in SIZES]
    finally:
        server.cleanup()


def table(rows: list[Row]) -> str:
    """The figures as a Markdown table."""
    lines = [
        "| streams | followers | round trips | commands | worker CPU ms | "
        "wall ms | Redis CPU ms | per follower at each keep-alive: "
        "commands / worker CPU ms / Redis CPU ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for streams, followers, c, n in rows:
        lines.append(
            f"| {streams:,} | {followers:,} | {c['round trips']:.0f} | "
            f"{c['commands']:,.0f} | {c['worker cpu ms']:.2f} | {c['wall ms']:.2f} | "
            f"{c['redis cpu ms']:.2f} | {n['commands']:,.0f} / "
            f"{n['worker cpu ms']:.2f} / {n['redis cpu ms']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    print(table(run(args.rounds)))


if __name__ == "__main__":
    main()
