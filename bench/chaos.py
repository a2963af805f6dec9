"""Chaos, the long version: seeded random faults on a Redis Cluster, Sentinel
and a standalone Redis while many generations stream through two app hosts,
plus series of failovers of the master serving a live stream, on Cluster and
on Sentinel. Writes ``docs/chaos.json`` and the Chaos section of
``docs/benchmarks.md``.

``make chaos`` (2 minutes per topology, 60 + 30 failovers) or
``python -m bench.chaos --minutes M --failovers N --seed S``.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import re
import statistics
import time
from pathlib import Path
from typing import Any

from harness.chaos import HOST_ENV, Outcome, failover_series, run
from harness.demo_server import Demo
from harness.redis_server import RedisServer
from harness.redis_topologies import ClusterFixture, SentinelFixture
from harness.topology_faults import (
    ClusterFaults,
    Faults,
    SentinelFaults,
    StandaloneFaults,
)

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "chaos.json"
COLUMNS = (
    "run", "streams", "events", "faults", "lost", "doubled", "false orphans",
    "failed", "keys left", "dead loops", "next token",
)  # fmt: skip
HEADER = (
    "| "
    + " | ".join(COLUMNS)
    + " |\n| --- | ---: | ---: | --- |"
    + " ---: |" * (len(COLUMNS) - 4)
)


def _hosts(url: str) -> list[Demo]:
    return [Demo(url, 1, dict(HOST_ENV)) for _ in range(2)]


def _row(outcome: Outcome, gaps: list[float] | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "run": outcome.topology,
        "seed": outcome.seed,
        "seconds": round(outcome.seconds),
        "streams": outcome.streams,
        "events": outcome.events,
        "faults": dict(outcome.faults),
        "lost": outcome.lost,
        "doubled": outcome.doubled,
        "false_orphans": outcome.false_orphans,
        "failed": outcome.failed,
        "keys_left": len(outcome.leftovers),
        "dead_loops": len(outcome.loops_dead),
        "reconnects": outcome.reconnects,
        "resets": outcome.resets,
    }
    if gaps:
        row["next_token_s"] = {
            "median": round(statistics.median(gaps), 2),
            "max": round(max(gaps), 2),
        }
    return row


def _on(faults: Faults, url: str, action: Any) -> Any:
    hosts = _hosts(url)
    try:
        return action(faults, hosts)
    finally:
        for host in hosts:
            host.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=2.0, help="per topology")
    parser.add_argument("--failovers", type=int, default=60, help="on the cluster")
    parser.add_argument("--sentinel-failovers", type=int, default=30)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    logging.getLogger("flask_sse_resilience").setLevel(logging.ERROR)
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    seconds = args.minutes * 60
    rows = []
    started = time.monotonic()
    cluster = ClusterFixture().start()
    try:
        faults: Faults = ClusterFaults(cluster)
        rows.append(_row(_on(faults, cluster.url, lambda f, h: run(
            f, h, seconds=seconds, seed=seed))))  # fmt: skip
        outcome, gaps = _on(faults, cluster.url, lambda f, h: failover_series(
            f, h, cycles=args.failovers, seed=seed))  # fmt: skip
        rows.append(_row(outcome, gaps))
    finally:
        cluster.cleanup()
    sentinel = SentinelFixture().start()
    try:
        faults = SentinelFaults(sentinel)
        rows.append(_row(_on(faults, sentinel.url, lambda f, h: run(
            f, h, seconds=seconds, seed=seed))))  # fmt: skip
        outcome, gaps = _on(faults, sentinel.url, lambda f, h: failover_series(
            f, h, cycles=args.sentinel_failovers, seed=seed))  # fmt: skip
        rows.append(_row(outcome, gaps))
    finally:
        sentinel.cleanup()
    server = RedisServer(None, "--dbfilename", "dump.rdb").start()
    try:
        rows.append(_row(_on(StandaloneFaults(server), server.url, lambda f, h: run(
            f, h, seconds=seconds, seed=seed))))  # fmt: skip
    finally:
        server.cleanup()
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "minutes_per_topology": args.minutes,
        "seed": seed,
        "suite_seconds": round(time.monotonic() - started),
        "runs": rows,
    }
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    bench = ROOT / "docs" / "benchmarks.md"
    text = re.sub(r"\n## Chaos\n.*?(?=\n## |\Z)", "", bench.read_text(), flags=re.S)
    bench.write_text(text.rstrip("\n") + "\n" + chaos_section())
    print(json.dumps(report, indent=2))
    print(f"wrote {OUT} and the Chaos section of {bench}")


def chaos_section() -> str:
    """The last ``make chaos`` run's figures (``docs/chaos.json``), if any."""
    if not OUT.exists():
        return ""
    report = json.loads(OUT.read_text())
    lines = []
    for row in report["runs"]:
        faults = ", ".join(f"{n} {kind}" for kind, n in sorted(row["faults"].items()))
        gap = row.get("next_token_s")
        recovery = f"{gap['median']} / {gap['max']}" if gap else "-"
        lines.append(
            f"| {row['run']} | {row['streams']:,} | {row['events']:,} | {faults} "
            f"| {row['lost']} | {row['doubled']} | {row['false_orphans']} "
            f"| {row['failed']} | {row['keys_left']} | {row['dead_loops']} "
            f"| {recovery} |"
        )
    table = "\n".join(lines)
    return f"""
## Chaos

`make chaos` (`python -m bench.chaos`), {report["date"]}, seed
{report["seed"]}, {report["suite_seconds"] / 60:.0f} minutes in all: two app
hosts (the demo under gunicorn, one gevent worker each; heartbeat 1 s, stale
3 s, guardian 1 s), generations produced on one host and followed on the other
by httpx-sse clients that reconnect by Last-Event-ID. The chaos runs keep ten
generations live for {report["minutes_per_topology"]:g} minutes per topology
while a fault strikes every 1.5-4 s (masters killed with SIGKILL and
restarted as replicas once replaced, `CLIENT PAUSE` of 0.2-0.8 s (0.5 s at
most on Sentinel), `CLIENT KILL TYPE pubsub`, a standalone Redis shut down
with its data and restarted);
the failover series kill the master serving a live stream's slot, once per
stream. *Next token* is the time from the kill to the follower's next token
(median / max, seconds).

{HEADER}
{table}

Raw figures: `docs/chaos.json`.
"""


if __name__ == "__main__":
    main()
