"""The benchmark suite: flask-sse-resilience beside flask-sse and a raw gevent
baseline, each under gunicorn with ONE gevent worker, one private redis-server,
and a separate gevent load-client process. ``make bench`` (or ``make
bench-quick`` for a smoke run); prints a table and writes docs/benchmarks.md
with plots.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import coalescing
from bench.chaos import chaos_section
from bench.control import control_bench, control_section
from bench.core import (
    dashboard_snapshot,
    guardian_sweep,
    redis_sockets,
    rss_kib,
    throughput,
)
from bench.llm import FULL as LLM_FULL
from bench.llm import QUICK as LLM_QUICK
from bench.llm import LlmSize, llm_section, profile_section
from bench.llm import run as llm_run
from bench.rig import LoadClient, Server, cpu_ms, say
from bench.storm import storm, storm_section
from bench.targets import compare, targets_markdown
from harness.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[1]
SERVERS = ("ours", "flask-sse", "baseline", "sse-starlette")


@dataclass
class Size:
    hold: list[int]
    hold_seconds: float
    fanout: list[int]
    steady_clients: int
    steady_seconds: float
    saturate_clients: int
    saturate_seconds: float
    resume_behind: int
    recover_tries: int
    guardian: tuple[int, int]
    events: int
    repeats: int
    cancels: int = 100
    #: Clients each following a stream of its own, held idle.
    hold_own: tuple[int, ...] = (3000, 10_000)
    #: The reconnect storm: streams, clients per stream.
    storm: tuple[int, int] = (500, 10)
    llm: LlmSize = field(default_factory=lambda: LLM_FULL)
    #: Seconds of each pattern and mode of the coalescing comparison.
    coalescing_seconds: float = 5.0


FULL = Size([100, 1000, 3000, 6000, 10_000], 5, [1000, 3000, 10_000], 1000, 10,
            100, 2, 1000, 200, (10_000, 100), 20_000, 3)  # fmt: skip
QUICK = Size([100, 500], 2, [100, 300], 200, 3, 50, 2, 200, 20, (1000, 10),
             2000, 1, 10, (300,), (20, 5), LLM_QUICK, 1.0)  # fmt: skip


def settle(server: Server, client: LoadClient, publish: Callable[[int], None]) -> None:
    """Close the client's connections and let the server notice (flask-sse only
    notices when it next writes, so give it something to write)."""
    client.call(cmd="close")
    for k in range(3):
        publish(10**9 + k)
        time.sleep(0.1)
    time.sleep(0.5)


def hold(
    server: Server, client: LoadClient, n: int, seconds: float
) -> dict[str, float]:
    with server.stream() as publish:
        before = rss_kib(server.worker)
        opened = client.call(cmd="connect", port=server.port, path=server.path,
                             n=n, cookie=server.cookie)  # fmt: skip
        # Hold only once the server serves every client: RSS measured while
        # requests are still queued would count too few connections.
        following(server, n, seconds=30 + n / 200)
        time.sleep(seconds)
        stats = client.call(cmd="stats")
        result = {
            "connected": opened["opened"],
            "dropped": n - stats["alive"],
            "rss_per_conn_kib": (rss_kib(server.worker) - before) / n,
            "redis_conns": redis_sockets(server.worker, server.redis.port),
        }
        settle(server, client, publish)
    return result


def hold_own(
    server: Server, client: LoadClient, n: int, seconds: float
) -> dict[str, float]:
    """n idle clients, each following a stream of its own."""
    if server.name == "ours":
        sse = server.extra["sse"]
        paths = [f"/sse/streams/{sse.open_stream('bench')}" for _ in range(n)]
    elif server.name == "flask-sse":
        paths = [f"/stream?channel=own{i}" for i in range(n)]
    else:
        paths = [f"/s/own{i}" for i in range(n)]
    before = rss_kib(server.worker)
    opened = client.call(cmd="follow", port=server.port, paths=paths,
                         cookie=server.cookie)  # fmt: skip
    time.sleep(2.0 + n / 1000)  # every connection served and subscribed
    time.sleep(seconds)
    stats = client.call(cmd="follow_stats")
    result = {
        "connected": opened["opened"] - stats["errors"],
        "rss_per_conn_kib": (rss_kib(server.worker) - before) / n,
    }
    client.call(cmd="close")
    if server.name == "ours":  # end them: the user's active streams are capped
        for path in paths:
            with server.extra["sse"].producer(path.rsplit("/", 1)[1]):
                pass
    time.sleep(1.0)
    return result


def following(server: Server, n: int, seconds: float = 30) -> None:
    """Wait until the server follows the stream for all n clients (ours counts
    them in the registry; the others get a fixed second)."""
    if server.name != "ours":
        time.sleep(1.0)
        return
    sid = server.path.rsplit("/", 1)[1]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        stream = server.extra["sse"].get_stream(sid)
        if stream is not None and stream.connections >= n:
            break
        time.sleep(0.1)
    time.sleep(0.2)


def attach(server: Server, client: LoadClient, n: int) -> None:
    """Connect n clients, wait until the server follows them all, and forget
    what they received so far."""
    client.call(cmd="connect", port=server.port, path=server.path, n=n,
                cookie=server.cookie)  # fmt: skip
    following(server, n)
    client.call(cmd="reset")


def fanout(server: Server, client: LoadClient, n: int) -> dict[str, float]:
    with server.stream() as publish:
        attach(server, client, n)
        alive = client.call(cmd="stats")["alive"]
        sent = time.time()
        publish(1)
        deadline = time.monotonic() + 10  # flask-sse never reaches most of 3,000
        got: list[Any] = [0, sent]
        while time.monotonic() < deadline:
            got = client.call(cmd="stats")["events"].get("1", [0, sent])
            if got[0] >= alive:
                break
            time.sleep(0.05)
        result = {"fanout_ms": (got[1] - sent) * 1000, "reached": got[0] / max(1, n)}
        settle(server, client, publish)
    return result


def steady(
    server: Server, client: LoadClient, n: int, seconds: float
) -> dict[str, float]:
    with server.stream() as publish:
        attach(server, client, n)
        cpu_before = cpu_ms(server.worker)
        count = int(seconds * 10)
        start = time.monotonic()
        for k in range(count):
            publish(k)
            time.sleep(max(0.0, start + (k + 1) * 0.1 - time.monotonic()))
        time.sleep(2.0)
        stats = client.call(cmd="stats")
        cpu = cpu_ms(server.worker) - cpu_before
        received = sum(c for c, _ in stats["events"].values())
        latencies = sorted(stats["latencies"]) or [0.0]
        result = {
            "p50_ms": latencies[len(latencies) // 2] * 1000,
            "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
            "max_ms": latencies[-1] * 1000,
            "lost": n * count - received,
            "cpu_ms_per_1000": cpu / max(1, received / 1000),
        }
        settle(server, client, publish)
    return result


def saturate(
    server: Server, client: LoadClient, n: int, seconds: float
) -> dict[str, float]:
    with server.stream() as publish:
        attach(server, client, n)
        start = time.time()
        sent = 0
        while time.time() - start < seconds:
            publish(sent)
            sent += 1
        # Until delivery stops (3 quiet seconds), 20 s at most: a server that
        # falls that far behind is not keeping up, whatever it does later.
        previous, quiet, deadline = -1, 0, time.monotonic() + 20
        while quiet < 3 and time.monotonic() < deadline:  # until delivery stops
            time.sleep(1.0)
            stats = client.call(cmd="stats")
            received = sum(c for c, _ in stats["events"].values())
            quiet = quiet + 1 if received == previous else 0
            previous = received
        if received <= 0:  # a broken run, not a slow server: say so
            raise RuntimeError(
                f"{server.name} delivered nothing to {n} clients in saturate "
                f"({sent:,} events published)"
            )
        last = max((t for _, t in stats["events"].values()), default=start)
        result = {
            "delivered_per_s": received / max(1e-9, last - start),
            "lost": sent * n - received,
        }
        settle(server, client, publish)
    return result


def resume(server: Server, behind: int) -> dict[str, float]:
    sse = server.extra["sse"]
    sid = sse.open_stream("bench")
    with sse.producer(sid) as out:
        first = out.send("token", {"k": 0})
        for k in range(1, behind + 1):
            out.send("token", {"k": k})
        started = time.monotonic()
        got = 0
        base = f"http://127.0.0.1:{server.port}"
        headers = {"Cookie": server.cookie}
        with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
            with http.stream("GET", f"/sse/streams/{sid}",
                             headers={"Last-Event-ID": first}) as response:  # fmt: skip
                for line in response.iter_lines():
                    if line.startswith("id:"):
                        got += 1
                        if got == behind:
                            break
        return {"catch_up_ms": (time.monotonic() - started) * 1000}


def recover(server: Server, tries: int) -> dict[str, float]:
    sse = server.extra["sse"]
    sid = sse.open_stream("bench")
    with sse.producer(sid) as out:
        out.complete({"done": True})
    times = []
    base = f"http://127.0.0.1:{server.port}"
    headers = {"Cookie": server.cookie}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
        for _ in range(tries):
            started = time.monotonic()
            with http.stream("GET", f"/sse/streams/{sid}") as response:
                for line in response.iter_lines():
                    if '"completed"' in line:
                        break
            times.append((time.monotonic() - started) * 1000)
    times.sort()
    return {"p50_ms": times[len(times) // 2], "p99_ms": times[int(len(times) * 0.99)]}


def med(runs: list[dict[str, float]], key: str) -> float:
    """The median of the runs; for memory growth, the first run's figure: the
    server is fresh for it, while later runs reuse memory the first freed and
    so count too little (a median once showed 1.3 KiB a connection)."""
    if key == "rss_per_conn_kib":
        return runs[0][key]
    return statistics.median(run[key] for run in runs)


def run(size: Size) -> dict[str, Any]:
    results: dict[str, Any] = {name: {} for name in SERVERS}
    redis = RedisServer().start()
    client = LoadClient()
    try:
        for name in SERVERS:
            server = Server(name, redis)
            server.start()
            print(f"-- {name}", flush=True)
            try:
                r = results[name]
                for n in size.hold:
                    say(name, "hold", n)
                    # A fresh server per N: RSS growth is only meaningful in a
                    # process that has not freed (and kept) memory before.
                    server.stop()
                    server = Server(name, redis)
                    server.start()
                    r[f"hold{n}"] = [hold(server, client, n, size.hold_seconds)
                                     for _ in range(size.repeats)]  # fmt: skip
                for n in size.hold_own:
                    say(name, "hold, a stream each,", n)
                    server.stop()
                    server = Server(name, redis)
                    server.start()
                    r[f"own{n}"] = [hold_own(server, client, n, size.hold_seconds)]
                # A fresh server after the hold runs: flask-sse leaks what its
                # clients left behind (it notices only on its next write).
                server.stop()
                server = Server(name, redis)
                server.start()
                for n in size.fanout:
                    say(name, "fanout", n)
                    r[f"fanout{n}"] = [fanout(server, client, n)
                                       for _ in range(size.repeats)]  # fmt: skip
                say(name, "steady")
                r["steady"] = [steady(server, client, size.steady_clients,
                                      size.steady_seconds)
                               for _ in range(size.repeats)]  # fmt: skip
                say(name, "saturate")
                r["saturate"] = [saturate(server, client, size.saturate_clients,
                                          size.saturate_seconds)
                                 for _ in range(size.repeats)]  # fmt: skip
                if name == "ours":
                    say(name, "resume, recover, throughput")
                    r["resume"] = [resume(server, size.resume_behind)
                                   for _ in range(size.repeats)]  # fmt: skip
                    r["recover"] = [recover(server, size.recover_tries)]
                    r["throughput"] = [throughput(server.demo, redis.url, size.events)
                                       for _ in range(size.repeats)]  # fmt: skip
                    say(name, "reconnect storm")
                    r["storm"] = [storm(server, client, redis, *size.storm)]
            finally:
                server.stop()
        r = results["ours"]
        r["guardian"] = [guardian_sweep(redis, *size.guardian)
                         for _ in range(size.repeats)]  # fmt: skip
        r["dashboard"] = [dashboard_snapshot(redis, size.guardian[0])
                          for _ in range(size.repeats)]  # fmt: skip
        say("ours", "cancel and keys")
        r["control"] = control_bench(redis.url, size.cancels)
        results["llm"] = llm_run(size.llm, redis, client)
        say("ours", "coalescing: leading edge")
        results["coalescing"] = coalescing.measure(redis.url, size.coalescing_seconds)
        results["redis_version"] = redis.client().info()["redis_version"]
    finally:
        client.stop()
        redis.cleanup()
    return results


def table(results: dict[str, Any], size: Size) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [("measure", *SERVERS)]

    def row(label: str, key: str, metric: str, fmt: str = "{:,.1f}") -> None:
        cells = []
        for name in SERVERS:
            runs = results[name].get(key)
            cells.append(fmt.format(med(runs, metric)) if runs else "n/a")
        rows.append((label, *cells))

    for n in size.hold:
        row(f"hold {n:,}: connected", f"hold{n}", "connected", "{:,.0f}")
        row(f"hold {n:,}: dropped", f"hold{n}", "dropped", "{:,.0f}")
        row(
            f"hold {n:,}: server RSS per connection, KiB",
            f"hold{n}",
            "rss_per_conn_kib",
        )
        row(f"hold {n:,}: Redis connections held", f"hold{n}", "redis_conns", "{:,.0f}")
    for n in size.hold_own:
        row(f"hold {n:,}, a stream each: connected", f"own{n}", "connected", "{:,.0f}")
        row(f"hold {n:,}, a stream each: server RSS per connection, KiB", f"own{n}",
            "rss_per_conn_kib")  # fmt: skip
    for n in size.fanout:
        row(f"fan-out to {n:,}: time to last client, ms", f"fanout{n}", "fanout_ms")
        row(
            f"fan-out to {n:,}: share of clients reached",
            f"fanout{n}",
            "reached",
            "{:.3f}",
        )
    c, s = size.steady_clients, size.steady_seconds
    row(f"steady {c:,} clients, 10 ev/s, {s:g} s: latency p50, ms", "steady", "p50_ms")
    row("steady: latency p99, ms", "steady", "p99_ms")
    row("steady: latency max, ms", "steady", "max_ms")
    row("steady: lost", "steady", "lost", "{:,.0f}")
    row("steady: server CPU ms per 1,000 deliveries", "steady", "cpu_ms_per_1000")
    row(f"saturate {size.saturate_clients} clients: delivered events/s", "saturate",
        "delivered_per_s", "{:,.0f}")  # fmt: skip
    row("saturate: lost", "saturate", "lost", "{:,.0f}")
    row(f"resume {size.resume_behind:,} events behind: catch-up, ms", "resume",
        "catch_up_ms")  # fmt: skip
    row(f"recover after completion ({size.recover_tries} tries): p50, ms", "recover",
        "p50_ms", "{:,.2f}")  # fmt: skip
    row("recover after completion: p99, ms", "recover", "p99_ms", "{:,.2f}")
    row(f"one stream end to end ({size.events:,} events), events/s", "throughput",
        "deliver_per_s", "{:,.0f}")  # fmt: skip
    g = size.guardian
    row(f"guardian sweep {g[0]:,} active / {g[1]} stale, ms", "guardian", "sweep_ms")
    row("guardian sweep: Redis round trips", "guardian", "sweep_round_trips", "{:.0f}")
    row(f"dashboard snapshot, {g[0]:,} active, by heartbeat: ms", "dashboard",
        "heartbeat_ms")  # fmt: skip
    row("dashboard snapshot by heartbeat: Redis round trips", "dashboard",
        "heartbeat_round_trips", "{:.0f}")  # fmt: skip
    row(f"dashboard snapshot, {g[0]:,} active, by owner: ms", "dashboard",
        "owner_ms")  # fmt: skip
    return rows


def plots(results: dict[str, Any], size: Size, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    for key, metric, label, sizes, name in (
        ("hold", "rss_per_conn_kib", "server RSS per connection (KiB)", size.hold,
         "bench-memory.png"),
        ("fanout", "fanout_ms", "fan-out: time to last client (ms)", size.fanout,
         "bench-fanout.png"),
    ):  # fmt: skip
        figure, axes = plt.subplots(figsize=(6, 3.6))
        for server in SERVERS:
            points = [(n, med(results[server][f"{key}{n}"], metric)) for n in sizes]
            axes.plot(*zip(*points, strict=True), marker="o", label=server)
        axes.set_xlabel("clients (N)")
        axes.set_ylabel(label)
        axes.grid(alpha=0.3)
        axes.legend()
        figure.tight_layout()
        figure.savefig(out.parent / name, dpi=110)
        plt.close(figure)
        made.append(name)
    return made


def write(results: dict[str, Any], size: Size, out: Path, quick: bool) -> None:
    rows = compare(table(results, size), out)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        cells = zip(r, widths, strict=True)
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                        for i, (c, w) in enumerate(cells)))  # fmt: skip
    images = plots(results, size, out)
    md = "\n".join("| " + " | ".join(r) + " |" for r in rows[:1])
    md += "\n| --- |" + " ---: |" * (len(SERVERS) + 2) + "\n"
    md += "\n".join("| " + " | ".join(r) + " |" for r in rows[1:])
    machine = (
        f"{os.cpu_count()} cores, Python {platform.python_version()}, "
        f"Redis {results['redis_version']}, {platform.system()} {platform.machine()}"
    )
    ours_fan = med(results["ours"][f"fanout{size.fanout[-1]}"], "fanout_ms")
    base_fan = med(results["baseline"][f"fanout{size.fanout[-1]}"], "fanout_ms")
    peer_fan = med(results["flask-sse"][f"fanout{size.fanout[-1]}"], "fanout_ms")
    big = size.hold[len(size.hold) // 2]
    ours_mem = med(results["ours"][f"hold{big}"], "rss_per_conn_kib")
    base_mem = med(results["baseline"][f"hold{big}"], "rss_per_conn_kib")
    peer_mem = med(results["flask-sse"][f"hold{big}"], "rss_per_conn_kib")
    asgi_fan = med(results["sse-starlette"][f"fanout{size.fanout[-1]}"], "fanout_ms")
    asgi_mem = med(results["sse-starlette"][f"hold{big}"], "rss_per_conn_kib")
    command = "python -m bench.suite" + (" --quick" if quick else "")
    out.write_text(f"""# Benchmarks

Measured by `{"make bench-quick" if quick else "make bench"}` (`{command}`) on
{machine}, {time.strftime("%Y-%m-%d")}; medians of {size.repeats} run(s).

Four servers, each with **one** worker process on loopback (gunicorn with a
gevent worker; uvicorn for the ASGI peer), one private redis-server, and the
load in a separate gevent process:

- **ours**: the demo app with flask-sse-resilience; every client follows one
  stream, events come from a producer in the bench process (coalescing off:
  these rows time each event; the generations section measures the window).
- **flask-sse** (PyPI `flask-sse` 1.0): one Redis pub/sub connection per client.
- **baseline**: raw gevent WSGI writing pre-encoded frames fed by one shared
  pub/sub connection: the best case, with no registry, log, ownership or replay.
- **sse-starlette** (PyPI `sse-starlette` 3 on `uvicorn[standard]`, one
  process): the peer an ASGI user would pick, written with its public API:
  one shared `redis.asyncio` pub/sub opened by the app's lifespan, a bounded
  queue per client, `EventSourceResponse`. No registry, log or replay either.

The targets of this release, as ratios to the baseline in the same run:

{targets_markdown(results, size)}
Headline ratios (absolute times move between machines): fan-out to
{size.fanout[-1]:,} clients takes {ours_fan / max(base_fan, 1e-9):.1f}× the
baseline's time, {ours_fan / max(peer_fan, 1e-9):.2f}× flask-sse's and
{ours_fan / max(asgi_fan, 1e-9):.2f}× sse-starlette's; memory per held
connection at {big:,} clients is {ours_mem / max(base_mem, 1e-9):.1f}× the
baseline's, {ours_mem / max(peer_mem, 1e-9):.2f}× flask-sse's and
{ours_mem / max(asgi_mem, 1e-9):.2f}× sse-starlette's.

{md}

![memory per connection]({images[0]})
![fan-out time]({images[1]})

Notes:

- Each process may open at most 20,000 files: flask-sse needs two sockets per
  client (the client's and its own Redis pub/sub), so it tops out near 10,000
  clients; ours and the baseline need one.
- *hold*: N idle clients for {size.hold_seconds:g} s (not 15 s, so that the
  whole suite fits in 15 minutes on 2 cores), counted from when the server
  serves all of them; *dropped* counts connections the server closed
  meanwhile. RSS per connection is the growth in the first of the runs, on a
  server started fresh for that N (later runs reuse memory the first freed).
- *steady* runs {size.steady_seconds:g} s; latency is from the publisher's
  timestamp to arrival at the client, same machine clock. CPU is the worker's
  utime+stime from /proc.
- *saturate* publishes as fast as one publisher can: our producer's
  `send` (one idempotent Lua call per event) versus a bare `PUBLISH` for the
  others, so it measures each whole system, including what it guarantees.
- *resume* and *recover* do not exist in the others: flask-sse ignores
  Last-Event-ID and stores nothing; the baseline has no log.
{llm_section(results["llm"], size.llm, out)}{profile_section(results["llm"], size.llm)}\
{coalescing.section(results["coalescing"])}\
{storm_section(results["ours"]["storm"][0])}\
{control_section(results["ours"]["control"])}{soak_section()}{chaos_section()}""")
    print(f"\nwrote {out}")


def soak_section() -> str:
    """The last ``make soak`` run's figures (``docs/soak.json``), if any."""
    path = ROOT / "docs" / "soak.json"
    if not path.exists():
        return ""
    soak = json.loads(path.read_text())
    drift = ", ".join(
        f"{v / 1024:+.1f} MiB" for v in soak["worker_rss_drift_kib"].values()
    )
    return f"""
## Soak

`make soak` (`python -m bench.soak --minutes 10`): the demo under gunicorn
with two gevent workers, {soak["streams"]:,} streams, {soak["published"]:,}
events published over {soak["minutes"]:g} minutes, clients dropping at random
and resuming by Last-Event-ID through the Python client
({soak["client_drops_and_resumes"]:,} drops and resumes).

| measure | result |
| --- | ---: |
| events lost | {soak["lost"]} |
| events doubled | {soak["doubled"]} |
| streams out of order | {soak["streams_out_of_order"]} |
| keys left in Redis after the completion TTL | {soak["redis_stream_keys_left"]} |
| worker RSS drift | {drift} |

Raw figures: `docs/soak.json`.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, 1 run")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    logging.getLogger("flask_sse_resilience").setLevel(logging.ERROR)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    size = QUICK if args.quick else FULL
    out = args.out or (
        ROOT / "test-artifacts" / "benchmarks-quick.md"
        if args.quick
        else ROOT / "docs" / "benchmarks.md"
    )
    out.parent.mkdir(exist_ok=True)
    started = time.monotonic()
    results = run(size)
    write(results, size, out, args.quick)
    print(f"suite took {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
