"""Concurrent generations at an LLM's pace: N streams, each sending 50 tokens
a second, each followed by one client (every tenth by two), ours beside the
raw gevent baseline in one run.

Every server runs under gunicorn with ONE gevent worker; the producers run in
their own gevent process (``bench.llmproducer``), the clients in the load
client's (``bench.loadclient``), Redis in its own: all four share the
machine's cores. Per run: tokens sent as a share of the target rate, token
latency (producer timestamp to client), lost and doubled tokens, the worker's
CPU per 1,000 delivered tokens, Redis commands per token (``INFO
commandstats``, every command the server ran, those inside scripts included)
and the worker's RSS.

``python -m bench.llm [--quick]`` runs it alone; the suite includes it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis as redis_py

from bench.core import Driven, rss_kib
from bench.rig import LoadClient, Server, cpu_ms, say
from harness.redis_server import RedisServer

RATE = 50


@dataclass
class LlmSize:
    streams: list[int]
    seconds: float
    #: Coalescing windows compared at ``sweep_n`` streams.
    windows: list[int]
    sweep_n: int
    #: Profile the worker (py-spy) at ``sweep_n``, without and with coalescing.
    profile: bool = True


FULL = LlmSize([50, 100, 200, 500, 1000], 8, [0, 10, 25, 40], 200)
QUICK = LlmSize([20], 2, [0, 40], 20, profile=False)


class Producers(Driven):
    """The separate process running every stream's producer."""

    def __init__(self) -> None:
        super().__init__("bench.llmproducer")


def commands(client: redis_py.Redis) -> int:
    """Commands Redis has run so far (``INFO`` itself excluded)."""
    stats = client.info("commandstats")
    return sum(v["calls"] for k, v in stats.items() if k != "cmdstat_info")


def generations(
    server: Any, client: Any, producers: Producers, redis: RedisServer,
    n: int, seconds: float, coalesce_ms: int,
) -> dict[str, float]:  # fmt: skip
    """One run: n streams at RATE tokens/s for ``seconds``."""

    kind = "ours" if server.name == "ours" else "baseline"
    paths = producers.call(cmd="open", server=kind, n=n, redis_url=redis.url,
                           coalesce_ms=coalesce_ms)["paths"]  # fmt: skip
    doubled_paths = paths[: max(1, n // 10)]
    client.call(cmd="follow", port=server.port, paths=paths + doubled_paths,
                cookie=server.cookie)  # fmt: skip
    time.sleep(1.0 + n / 500)  # every connection served and subscribed
    rc = redis.client()
    worker = server.worker
    cpu_before, commands_before = cpu_ms(worker), commands(rc)
    ran = producers.call(cmd="run", seconds=seconds, rate=RATE)
    wall = ran["wall_s"]
    time.sleep(2.0)
    stats = client.call(cmd="follow_stats")
    cpu = cpu_ms(worker) - cpu_before
    sent = ran["sent"]
    total = sum(sent)
    delivered = lost = doubled = 0
    for index, received, twice, skipped, last in stats["conns"]:
        delivered += received
        doubled += twice
        lost += skipped + max(0, sent[index % n] - 1 - last)
    result = {
        "share": total / (n * RATE * max(wall, seconds)),
        "p50_ms": stats["p50"] * 1000,
        "p99_ms": stats["p99"] * 1000,
        "lost": lost,
        "doubled": doubled,
        "cpu_ms_per_1000": cpu / max(1e-9, delivered / 1000),
        "commands_per_token": (commands(rc) - commands_before) / max(1, total),
        "producer_us_per_token": ran["cpu_ms"] * 1000 / max(1, total),
        "rss_mib": rss_kib(worker) / 1024,
        # Shares of one core while tokens flowed (the worker's over the run
        # and the 2 s after it).
        "worker_load": cpu / ((wall + 2.0) * 1000),
        "producer_load": ran["cpu_ms"] / (wall * 1000),
    }
    producers.call(cmd="finish")
    client.call(cmd="close")
    time.sleep(0.5)
    return result


#: Frames whose time is grouped in the profile summary, by where they are.
GROUPS = (
    ("socket writes to clients", ("Response.write", "write_chunk")),
    ("pub/sub listener (reading, parsing, dispatch)", ("Link._run",)),
    ("followers waiting and waking", ("Follower.wait",)),
    ("gevent hub (loop, switches, timers)", ("Hub.run",)),
    ("replay and catch-up reads", ("EventStream._open", "EventStream._catch_up")),
)


def summarize(raw: str) -> dict[str, Any]:
    """Top functions by own time, and the share of the groups above, from
    py-spy's ``--format raw`` output (collapsed stacks)."""
    own: dict[str, int] = {}
    groups = dict.fromkeys((name for name, _ in GROUPS), 0)
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = [f.split(" (")[0] for f in stack.split(";")]
        own[stack.split(";")[-1]] = own.get(stack.split(";")[-1], 0) + samples
        for name, markers in GROUPS:
            if any(frame in markers for frame in frames):
                groups[name] += samples
                break
    top = sorted(own.items(), key=lambda kv: -kv[1])[:12]
    return {
        "samples": total,
        "top": [(name, samples / max(1, total)) for name, samples in top],
        "groups": {name: samples / max(1, total) for name, samples in groups.items()},
    }


def profile(
    server: Any, client: Any, producers: Producers, redis: RedisServer,
    n: int, seconds: float, window: int,
) -> dict[str, Any]:  # fmt: skip
    """One run of :func:`generations` with py-spy sampling the worker."""
    spy = Path(sys.executable).parent / "py-spy"
    if not spy.exists():
        return {}
    worker = server.worker
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "profile.txt"

        def record() -> None:
            time.sleep(1.0 + n / 500 + 0.5)  # into the producing phase
            subprocess.run(
                [str(spy), "record", "-p", str(worker), "-d", str(int(seconds) - 1),
                 "-r", "250", "--format", "raw", "-o", str(raw), "--nonblocking"],
                capture_output=True, check=False,
            )  # fmt: skip

        sampler = threading.Thread(target=record)
        sampler.start()
        generations(server, client, producers, redis, n, seconds, window)
        sampler.join()
        return summarize(raw.read_text()) if raw.exists() else {}


def profile_section(results: dict[str, Any], size: LlmSize) -> str:
    """The page's profile of the worker, if the run made one."""
    profiles = {
        f"N = {size.sweep_n}, window {key.split('/')[1]} ms": value
        for key, value in results.items()
        if key.startswith("profile/")
    }
    if not profiles:
        return ""
    parts = ["\n## Where the worker's time goes\n\n"
             "py-spy sampling the worker (250 Hz, `--nonblocking`) during the "
             "concurrent-generations run named, own time per function (Python "
             "frames; the hub's line is libev and greenlet switching):\n"]  # fmt: skip
    for label, p in profiles.items():
        if not p:
            continue
        parts.append(f"\n**{label}** ({p['samples']:,} samples)\n\n"
                     "| group | share |\n| --- | ---: |\n")  # fmt: skip
        parts += [f"| {g} | {s * 100:.0f} % |\n" for g, s in p["groups"].items()]
        parts.append("\n| function (own time) | share |\n| --- | ---: |\n")
        parts += [f"| `{f}` | {s * 100:.1f} % |\n" for f, s in p["top"]]
    parts.append(PROFILE_NOTES)
    return "".join(parts)


#: What the profiles showed, and what changed because of them.
PROFILE_NOTES = """
What the profiles led to: the pub/sub listener spent a third of its time in
redis-py's pure-Python reply parser, so `hiredis` (its C parser) is now a
dependency; every token was its own script call, announcement, wake-up and
socket write per follower, so producers coalesce (one of each per window).
"""


def run(size: LlmSize, redis: RedisServer, client: Any) -> dict[str, Any]:
    """Every run of the section; returns ``{label: result}``."""

    results: dict[str, Any] = {}
    producers = Producers()
    try:
        for name in ("ours", "baseline"):
            server = Server(name, redis)
            server.start()
            try:
                windows = [0, DEFAULT_WINDOW] if name == "ours" else [0]
                for n in size.streams:
                    for window in windows:
                        say(name, f"generations {n} x {RATE} tok/s, {window} ms")
                        results[f"{name}/{window}/{n}"] = generations(
                            server, client, producers, redis, n, size.seconds, window
                        )
                if name == "ours" and size.profile:
                    for window in (0, DEFAULT_WINDOW):
                        say(name, f"profile at {size.sweep_n}, {window} ms")
                        results[f"profile/{window}"] = profile(
                            server, client, producers, redis, size.sweep_n,
                            size.seconds, window,
                        )  # fmt: skip
                if name == "ours":
                    for window in size.windows:
                        key = f"ours/{window}/{size.sweep_n}"
                        if key not in results:
                            say(name, f"window {window} ms at {size.sweep_n}")
                            results[key] = generations(
                                server, client, producers, redis, size.sweep_n,
                                size.seconds, window,
                            )  # fmt: skip
            finally:
                server.stop()
    finally:
        producers.stop()
    return results


#: The coalescing window measured beside "off" at every N.
DEFAULT_WINDOW = 40


def capacity(results: dict[str, Any], label: str, sizes: list[int]) -> int:
    """The largest N that kept its full rate (≥ 98 %), p99 ≤ 150 ms and lost
    nothing, or 0."""
    best = 0
    for n in sizes:
        r = results.get(f"{label}/{n}")
        if r and r["share"] >= 0.98 and r["p99_ms"] <= 150 and r["lost"] == 0:
            best = n
    return best


def rows(results: dict[str, Any], size: LlmSize) -> list[tuple[str, ...]]:
    """The section's table: one row per run."""
    out: list[tuple[str, ...]] = [(
        "server", "window ms", "N", "rate %", "p50 ms", "p99 ms", "lost",
        "doubled", "CPU ms / 1k tokens", "× baseline", "Redis cmds / token",
        "worker RSS MiB",
    )]  # fmt: skip
    runs = {k: v for k, v in results.items() if k.count("/") == 2}
    for key, r in sorted(runs.items(), key=lambda kv: _order(kv[0])):
        name, window, n = key.split("/")
        base = results.get(f"baseline/0/{n}")
        ratio = r["cpu_ms_per_1000"] / base["cpu_ms_per_1000"] if base else 0.0
        out.append((
            name, window, n, f"{r['share'] * 100:.0f}", f"{r['p50_ms']:.1f}",
            f"{r['p99_ms']:.1f}", f"{r['lost']:,}", f"{r['doubled']:,}",
            f"{r['cpu_ms_per_1000']:.1f}", f"{ratio:.2f}" if base else "n/a",
            f"{r['commands_per_token']:.2f}", f"{r['rss_mib']:.0f}",
        ))  # fmt: skip
    return out


def _order(key: str) -> tuple[int, int, int]:
    name, window, n = key.split("/")
    return (int(n), 0 if name == "baseline" else 1, int(window))


def markdown(results: dict[str, Any], size: LlmSize) -> str:
    """The table as Markdown, with the capacity line."""
    table = rows(results, size)
    text = "| " + " | ".join(table[0]) + " |\n|" + " --- |" * 3 + " ---: |" * 9 + "\n"
    text += "\n".join("| " + " | ".join(r) + " |" for r in table[1:])
    caps = {
        label: capacity(results, label, size.streams)
        for label in ("baseline/0", "ours/0", f"ours/{DEFAULT_WINDOW}")
    }
    return text + (
        f"\n\nLargest N at full rate with p99 ≤ 150 ms and nothing lost: "
        f"baseline {caps['baseline/0']}, ours without coalescing {caps['ours/0']}, "
        f"ours at {DEFAULT_WINDOW} ms {caps[f'ours/{DEFAULT_WINDOW}']} "
        f"(of N = {', '.join(map(str, size.streams))}).\n"
    )


def plot(results: dict[str, Any], size: LlmSize, out: Path) -> str:
    """CPU per token and p99 latency against N; returns the image's name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (cpu, p99) = plt.subplots(1, 2, figsize=(10, 3.6))
    lines = [("baseline/0", "baseline"), ("ours/0", "ours, no coalescing"),
             (f"ours/{DEFAULT_WINDOW}", f"ours, {DEFAULT_WINDOW} ms")]  # fmt: skip
    for label, name in lines:
        points = [(n, results[f"{label}/{n}"]) for n in size.streams]
        ns = [n for n, _ in points]
        cpu.plot(ns, [r["cpu_ms_per_1000"] for _, r in points], marker="o", label=name)
        p99.plot(ns, [r["p99_ms"] for _, r in points], marker="o", label=name)
    cpu.set_ylabel("worker CPU ms per 1,000 tokens")
    p99.set_ylabel("token latency p99 (ms)")
    p99.set_yscale("log")
    for axes in (cpu, p99):
        axes.set_xlabel(f"streams at {RATE} tokens/s (N)")
        axes.grid(alpha=0.3)
        axes.legend()
    figure.tight_layout()
    name = "bench-generations.png"
    figure.savefig(out.parent / name, dpi=110)
    plt.close(figure)
    return name


def bounds(results: dict[str, Any], size: LlmSize) -> str:
    """What bounds N here, and what one worker would carry on a core of its
    own, from the run's figures."""
    runs = {k: v for k, v in results.items() if k.count("/") == 2}
    short = sorted((int(k.split("/")[2]), k) for k, r in runs.items()
                   if r["share"] < 0.98)  # fmt: skip
    producer = [r["producer_us_per_token"] for k, r in runs.items()
                if k.startswith("ours/0/")]  # fmt: skip
    lines = []
    if short:
        n, key = short[0]
        r = runs[key]
        lines.append(
            f"Here the first run short of its rate is {key} (N = {n}): every "
            "process shares two cores; the one producer process used "
            f"{r['producer_load'] * 100:.0f} % of a core and the worker "
            f"{r['worker_load'] * 100:.0f} % (the load client and Redis the "
            "rest). Ours spends about "
            f"{statistics.median(producer):.0f} µs of producer CPU per token "
            "without coalescing (a script call and its reply each)."
        )
    for label in ("ours/0", f"ours/{DEFAULT_WINDOW}", "baseline/0"):
        cpu = [r["cpu_ms_per_1000"] for k, r in runs.items()
               if k.startswith(label + "/") and r["share"] >= 0.98]  # fmt: skip
        if cpu:
            tokens = 1_000_000 / statistics.median(cpu)  # per second of CPU
            lines.append(
                f"One worker on a core of its own would deliver about "
                f"{tokens:,.0f} tokens/s as {label} (median CPU per token), "
                f"{tokens / (RATE * 1.1):,.0f} streams at {RATE} tokens/s."
            )
    return "\n".join(lines) + "\n"


WINDOWS_HEAD = (
    "| window ms | p50 ms | p99 ms | CPU ms / 1k tokens | Redis cmds / token "
    "| producer µs / token |\n| ---: | ---: | ---: | ---: | ---: | ---: |"
)


def llm_section(results: dict[str, Any], size: LlmSize, out: Path) -> str:
    """The benchmark page's section for :func:`run`'s results."""
    image = plot(results, size, out)
    windows = "\n".join(
        f"| {w} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['cpu_ms_per_1000']:.1f} "
        f"| {r['commands_per_token']:.2f} | {r['producer_us_per_token']:.0f} |"
        for w in size.windows
        if (r := results.get(f"ours/{w}/{size.sweep_n}"))
    )
    return f"""
## Concurrent generations

`bench/llm.py`: N streams, each sending {RATE} tokens a second (about 40 bytes
of text each) for {size.seconds:g} s, each followed by one client (every tenth
by two); one gevent worker; the producers in their own process, the clients in
the load client's, Redis in its own, all on the same cores. *rate* is the
tokens sent as a share of the target; latency runs from the producer's
timestamp to the client; *lost* and *doubled* are checked per connection by
each token's number; CPU is the worker's per 1,000 tokens delivered; Redis
commands are every command the server ran (scripts' own included) per token
sent. Ours runs without coalescing (window 0) and at the default
({DEFAULT_WINDOW} ms).

{markdown(results, size)}
{bounds(results, size)}
![generations]({image})

Coalescing windows at N = {size.sweep_n} (the default chosen from these):

{WINDOWS_HEAD}
{windows}

At {RATE} tokens/s tokens come 20 ms apart: a 10 ms window holds one and only
adds latency; 25 ms catches a second now and then; 40 ms pairs them, halving
the script calls, announcements and socket writes. Real model output comes in
bursts (several tokens per network read of the model's API), where any window
gathers more.
"""


def main() -> None:

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    size = QUICK if args.quick else FULL
    redis = RedisServer().start()
    client = LoadClient()
    try:
        results = run(size, redis, client)
    finally:
        client.stop()
        redis.cleanup()
    for row in rows(results, size):
        print("  ".join(f"{cell:>9}" for cell in row))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
