"""Measurements of our own parts, used by the suite (:mod:`bench.suite`): one
stream's end-to-end throughput and the guardian's sweep cost, plus /proc helpers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from flask import Flask

from flask_sse_resilience import SSEResilience
from harness.demo_server import Demo
from harness.redis_server import RedisServer
from harness.roundtrips import RoundTrips, counting_client
from harness.seeding import fill

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def worker_pid(demo: Demo) -> int:
    children = Path(f"/proc/{demo.proc.pid}/task/{demo.proc.pid}/children")
    pids = [int(p) for p in children.read_text().split()]
    assert len(pids) == 1, pids
    return pids[0]


def redis_sockets(pid: int, redis_port: int) -> int:
    """TCP connections from process ``pid`` to the Redis port (via /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote_port = int(fields[2].split(":")[1], 16)
        if remote_port == redis_port and fields[9] in inodes:
            count += 1
    return count


def cookie_for(demo: Demo, user: str) -> str:
    client = demo.client(user)
    return "; ".join(f"{k}={v}" for k, v in client.cookies.items())


def throughput(demo: Demo, redis_url: str, events: int) -> dict[str, float]:
    """Producer in this process, reader in another, server in between."""
    app = Flask("bench-producer")
    app.config["SSE_RESILIENCE_REDIS_URL"] = redis_url
    sse = SSEResilience(app)
    sid = sse.open_stream("bench")
    reader = subprocess.Popen(
        [sys.executable, "-m", "bench.reader", demo.base, f"/sse/streams/{sid}",
         cookie_for(demo, "bench")],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert reader.stdout is not None
    assert reader.stdout.readline().strip() == "ready"
    started = time.time()
    with sse.producer(sid, app=app) as out:
        for i in range(events):
            out.send("token", {"i": i, "text": "lorem "})
        produced = time.time()
        out.complete({"n": events})
    report = json.loads(reader.stdout.readline())
    reader.wait(30)
    app.extensions["sse_resilience"].close()
    return {
        "produce_per_s": events / (produced - started),
        "deliver_per_s": report["count"] / (report["last"] - started),
        "lost": report["lost"],
        "doubled": report["doubled"],
    }


def guardian_sweep(redis: RedisServer, active: int, stale: int) -> dict[str, float]:
    """One sweep over ``active`` streams of which ``stale`` are stale."""
    client = counting_client(redis.port)
    client.flushall()
    app = Flask("bench-guardian")
    SSEResilience(app, redis=client)
    guardian = app.extensions["sse_resilience"].guardian
    fill(client, 10, 5)
    guardian.run_once()  # loads the scripts
    client.flushall()
    fill(client, active, active // stale)
    with RoundTrips() as rt:
        result = guardian.run_once(force=True)
    assert len(result.orphaned) == stale, result
    client.flushall()
    client.close()
    return {"sweep_ms": result.seconds * 1000, "sweep_round_trips": rt.count}


def dashboard_snapshot(redis: RedisServer, active: int) -> dict[str, float]:
    """Build the dashboard's snapshot over ``active`` streams, sorted by
    heartbeat (from the index) and by owner (every record read)."""
    from flask_sse_resilience.web.dashboard import snapshot

    client = counting_client(redis.port)
    client.flushall()
    app = Flask("bench-dashboard")
    SSEResilience(app, redis=client, dashboard=True, guardian_enabled=False)
    state = app.extensions["sse_resilience"]
    fill(client, active, 10)
    snapshot(state)  # warm
    figures: dict[str, float] = {}
    for sort in ("heartbeat", "owner"):
        started = time.perf_counter()
        with RoundTrips() as rt:
            shown = snapshot(state, sort=sort)
        figures[f"{sort}_ms"] = (time.perf_counter() - started) * 1000
        figures[f"{sort}_round_trips"] = rt.count
        assert shown["streams"]["total"] == active
    client.flushall()
    client.close()
    return figures


class Driven:
    """A helper process of the bench (``python -m <module>``) driven over its
    stdin and stdout, one JSON object per line each way."""

    def __init__(self, module: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module], cwd=Path(__file__).resolve().parents[1],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip

    def call(self, **command: Any) -> dict[str, Any]:
        """Send one command; return its reply."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        reply: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return reply

    def stop(self) -> None:
        """Ask the process to quit and wait for it."""
        try:
            self.call(cmd="quit")
        except (BrokenPipeError, json.JSONDecodeError):
            pass
        self.proc.wait(10)
