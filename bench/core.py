"""Core benchmarks: one stream's end-to-end throughput, and what idle clients cost.

Run with ``make bench`` (or ``python -m bench.core [--quick]``). Starts its own
redis-server and the demo under gunicorn with ONE gevent worker on loopback,
prints a table, and rewrites ``docs/benchmarks.md``. Figures are medians of 3
runs; they move between machines, so compare them on one machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from flask import Flask

from flask_sse_resilience import SSEResilience
from tests.demo_server import Demo
from tests.redis_server import RedisServer
from tests.roundtrips import RoundTrips, counting_client
from tests.test_guardian import fill

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


def idle_clients(demo: Demo, redis: RedisServer, clients: int) -> dict[str, float]:
    """Open ``clients`` idle SSE connections to the one worker and look."""
    cookie = cookie_for(demo, "idle")
    app = Flask("bench-idle")
    app.config["SSE_RESILIENCE_REDIS_URL"] = redis.url
    sse = SSEResilience(app)
    streams = [sse.open_stream("idle") for _ in range(10)]
    pid = worker_pid(demo)
    rss_before = rss_kib(pid)
    sockets = []
    try:
        for i in range(clients):
            sock = socket.create_connection(("127.0.0.1", demo.port))
            sock.sendall(
                f"GET /sse/streams/{streams[i % 10]} HTTP/1.1\r\nHost: b\r\n"
                f"Cookie: {cookie}\r\n\r\n".encode()
            )
            sockets.append(sock)
        for sock in sockets:
            sock.settimeout(30)
            head = b""
            while b"connected" not in head:
                head += sock.recv(4096)
        time.sleep(1)
        held = redis_sockets(pid, redis.port)
        rss_after = rss_kib(pid)
    finally:
        for sock in sockets:
            sock.close()
        app.extensions["sse_resilience"].close()
    return {
        "redis_connections": held,
        "rss_per_client_kib": (rss_after - rss_before) / clients,
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


def median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, 1 run")
    args = parser.parse_args()
    # The guardian bench orphans 100 streams per run: no warning per stream here.
    logging.getLogger("flask_sse_resilience").setLevel(logging.ERROR)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    events = 2_000 if args.quick else 20_000
    clients = 100 if args.quick else 400
    repeats = 1 if args.quick else 3

    redis = RedisServer().start()
    slow = {
        "FLASK_SSE_RESILIENCE_HEARTBEAT_INTERVAL": "15",
        "FLASK_SSE_RESILIENCE_STALE_THRESHOLD": "30",
        # One bench user holds every idle connection.
        "FLASK_SSE_RESILIENCE_MAX_CONNECTIONS_PER_USER": "100000",
    }
    demo = Demo(redis.url, 1, slow)
    try:
        try:
            through = [throughput(demo, redis.url, events) for _ in range(repeats)]
            idle = [idle_clients(demo, redis, clients) for _ in range(repeats)]
        finally:
            demo.stop()
        # Alone with Redis: no worker's guardian competes for the lead.
        sweeps = [guardian_sweep(redis, 10_000, 100) for _ in range(repeats)]
        redis_version = redis.client().info()["redis_version"]
    finally:
        redis.cleanup()

    lost = max(r["lost"] for r in through)
    doubled = max(r["doubled"] for r in through)
    rows = [
        ("events through one stream, producer → Redis → worker → client",
         f"{events:,}"),
        ("producer append rate, events/s",
         f"{median(through, 'produce_per_s'):,.0f}"),
        ("end-to-end delivery rate, events/s",
         f"{median(through, 'deliver_per_s'):,.0f}"),
        ("events lost / doubled", f"{lost} / {doubled}"),
        ("idle SSE clients on one worker", f"{clients:,}"),
        ("Redis connections held by the worker",
         f"{median(idle, 'redis_connections'):.0f}"),
        ("worker RSS per idle client, KiB",
         f"{median(idle, 'rss_per_client_kib'):.1f}"),
        ("guardian sweep, 10,000 active / 100 stale, ms",
         f"{median(sweeps, 'sweep_ms'):.1f}"),
        ("guardian sweep, Redis round trips",
         f"{median(sweeps, 'sweep_round_trips'):.0f}"),
    ]  # fmt: skip
    width = max(len(name) for name, _ in rows)
    table = "\n".join(f"{name:<{width}}  {value:>10}" for name, value in rows)
    print(table)
    machine = (
        f"{os.cpu_count()} cores, Python {platform.python_version()}, "
        f"Redis {redis_version}, {platform.system()} {platform.machine()}"
    )
    md_rows = "\n".join(f"| {name} | {value} |" for name, value in rows)
    DOC.write_text(
        f"""# Benchmarks

Measured by `make bench` (`python -m bench.core`{" --quick" if args.quick else ""})
on {machine}, {time.strftime("%Y-%m-%d")}. Medians of {repeats} run(s). One
gunicorn gevent worker serves the demo app; the producer and the reading client
are separate processes on the same machine, all on loopback, with a private
redis-server. Absolute figures move between machines; compare on one machine.

| measure | value |
| --- | --- |
{md_rows}

How each is measured:

- *producer append rate*: `Producer.send` in a loop (one Lua script call,
  one round trip, per event, with the idempotency check).
- *end-to-end delivery rate*: events the client received divided by the time
  from the first `send` to the last arrival.
- *Redis connections held*: the worker's TCP sockets to the Redis port (read
  from `/proc`) while the clients are connected; the worker's
  command pool is capped at `SSE_RESILIENCE_REDIS_MAX_CONNECTIONS` (10), its
  one pub/sub connection included.
- *RSS per idle client*: the worker's VmRSS growth divided by the clients.
- *guardian sweep*: `StreamGuardian.run_once()` over 10,000 active streams of
  which 100 have a heartbeat older than the stale threshold; round trips are
  counted at the socket (lock, candidates, one pipeline, the sweep record).
"""
    )
    print(f"\nwrote {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
