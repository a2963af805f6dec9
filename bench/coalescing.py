"""Latency a coalescing window adds, against the writes it saves: ``python -m
bench.coalescing`` (the figures in docs/benchmarks.md, "Coalescing: leading
edge").

One producer on a private redis-server, through the package's own
``producer``, in three send patterns: sparse (an event every 100 ms), tokens
(50 a second, 20 ms apart) and bursts (5 tokens at once every 100 ms, as a
model's API delivers several per network read). Each runs with no window,
with a fixed 40 ms window, and with the 40 ms window and its leading edge
(the default). A reader in another thread follows the stream's log with
``XREAD BLOCK``; an event's added latency is when the reader got it minus
when ``send`` was called (one process, one clock). Work is the write scripts
Redis ran per event (``INFO commandstats``): each one is also one pub/sub
announcement and, in every worker following the stream, one wake-up and one
socket write per follower.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import threading
import time

import redis
from flask import Flask

from flask_sse_resilience import SSEResilience
from flask_sse_resilience.store.keys import Keys
from harness.redis_server import RedisServer

WINDOW_MS = 40
#: name -> (seconds between rounds, sends per round)
PATTERNS: dict[str, tuple[float, int]] = {
    "sparse, 10 events/s": (0.1, 1),
    "tokens, 50/s": (0.02, 1),
    "bursts of 5 every 100 ms": (0.1, 5),
}
#: name -> (window ms, leading edge)
MODES: dict[str, tuple[int, bool]] = {
    "no window": (0, True),
    f"fixed {WINDOW_MS} ms": (WINDOW_MS, False),
    f"{WINDOW_MS} ms, leading edge (default)": (WINDOW_MS, True),
}


def scripts_run(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(
        int(v["calls"])
        for k, v in stats.items()
        if k in ("cmdstat_evalsha", "cmdstat_eval", "cmdstat_fcall")
    )


def run(
    url: str, pattern: tuple[float, int], mode: tuple[int, bool], seconds: float
) -> dict[str, float]:
    """One stream in ``pattern`` for ``seconds`` under ``mode``."""
    app = Flask("coalescing")
    app.config.update(
        SSE_RESILIENCE_REDIS_URL=url,
        SSE_RESILIENCE_GUARDIAN_ENABLED=False,
        SSE_RESILIENCE_COALESCE_MS=mode[0],
        SSE_RESILIENCE_COALESCE_LEADING=mode[1],
    )
    sse = SSEResilience(app)
    client = redis.Redis.from_url(url, decode_responses=True)
    sid = sse.open_stream("bench", app=app)
    log_key = Keys("sse:").log(sid)
    sent: list[float] = []
    got: list[float] = []
    stop = threading.Event()

    def read() -> None:
        reader = redis.Redis.from_url(url, decode_responses=True)
        last = "0-0"
        while not stop.is_set():
            answer = reader.xread({log_key: last}, block=200)
            now = time.monotonic()
            for _, entries in answer:
                for entry_id, _ in entries:
                    got.append(now)
                    last = entry_id
        reader.close()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.3)
    interval, per_round = pattern
    with sse.producer(sid, app=app) as out:
        before = scripts_run(client)  # after the claim
        started = time.monotonic()
        rounds = 0
        while time.monotonic() - started < seconds:
            for _ in range(per_round):
                sent.append(time.monotonic())
                out.send("token", {"text": "x" * 20})
            rounds += 1
            pause = started + rounds * interval - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        out.flush()
        deadline = time.monotonic() + 5
        while len(got) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.01)
        scripts = scripts_run(client) - before
        arrived = list(got)  # the sends' events, not the terminal one
    stop.set()
    reader.join()
    app.extensions["sse_resilience"].close()
    client.close()
    if len(arrived) != len(sent):
        raise RuntimeError(f"the reader got {len(arrived)} of {len(sent)} events")
    added = sorted((g - s) * 1000 for s, g in zip(sent, arrived, strict=True))
    return {
        "events": len(sent),
        "p50_ms": statistics.median(added),
        "p99_ms": added[min(len(added) - 1, int(len(added) * 0.99))],
        # From after the claim to before the terminal write: the sends' own.
        "scripts_per_event": scripts / len(sent),
    }


Row = tuple[str, str, dict[str, float]]


def measure(url: str, seconds: float) -> list[Row]:
    """Every pattern under every mode, on the Redis at ``url``."""
    return [
        (pattern_name, mode_name, run(url, pattern, mode, seconds))
        for pattern_name, pattern in PATTERNS.items()
        for mode_name, mode in MODES.items()
    ]


def table(rows: list[Row]) -> str:
    """The rows as a Markdown table."""
    lines = [
        "| pattern | coalescing | added latency p50 ms | p99 ms | writes per event |",
        "| --- | --- | --- | --- | --- |",
    ]
    for pattern, mode, r in rows:
        lines.append(f"| {pattern} | {mode} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
                     f"| {r['scripts_per_event']:.2f} |")  # fmt: skip
    return "\n".join(lines)


def section(rows: list[Row]) -> str:
    """The "Coalescing: leading edge" section of docs/benchmarks.md."""
    return f"""
## Coalescing: leading edge

One producer, three send patterns, no window, a fixed {WINDOW_MS} ms window
and the {WINDOW_MS} ms window with its leading edge (the default,
`SSE_RESILIENCE_COALESCE_LEADING`). Added latency is from `send` to a reader
following the log (`XREAD BLOCK`, same process); writes per event are the
write scripts Redis ran (each also one pub/sub announcement and, in every
worker, one wake-up and one socket write per follower). `python -m
bench.coalescing` runs it alone.

{table(rows)}

The leading edge writes a send that finds its stream quiet at once: a sparse
stream waits for nothing, at one write per event either way. A steady token
stream keeps the fixed window's savings and latency (the first token after
a pause goes at once, the rest open windows as before). A burst pays one more
write (its first token, at once) for the same median. (The hundredths
above 1.00 are the stream's heartbeat, a script of its own.)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    logging.getLogger("flask_sse_resilience").setLevel(logging.ERROR)
    server = RedisServer().start()
    try:
        rows = measure(server.url, args.seconds)
    finally:
        server.cleanup()
    print(table(rows))


if __name__ == "__main__":
    main()
