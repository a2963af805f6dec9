"""Soak: many streams, steady publishing, clients dropping and resuming at
random, for minutes. Reports RSS drift, lost and doubled events, and the Redis
keys left once every stream ended and its completion expired (all must be 0
but the drift). ``make soak`` (10 minutes) or ``python -m bench.soak --minutes M``.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

from flask import Flask

from bench.core import cookie_for, rss_kib
from flask_sse_resilience import SSEResilience
from harness.demo_server import Demo
from harness.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50.0, help="publishes/s")
    parser.add_argument("--drop", type=float, default=0.02,
                        help="chance a client hangs up after an event")  # fmt: skip
    args = parser.parse_args()
    logging.getLogger("flask_sse_resilience").setLevel(logging.ERROR)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    redis = RedisServer().start()
    env = {
        "FLASK_SSE_RESILIENCE_HEARTBEAT_INTERVAL": "5",
        "FLASK_SSE_RESILIENCE_STALE_THRESHOLD": "15",
        "FLASK_SSE_RESILIENCE_GUARDIAN_INTERVAL": "5",
        "FLASK_SSE_RESILIENCE_COMPLETION_TTL": "5",
        "FLASK_SSE_RESILIENCE_MAX_CONNECTIONS_PER_USER": "100000",
        "DEMO_WORKER_CONNECTIONS": "5000",
    }
    demo = Demo(redis.url, 2, env)
    app = Flask("soak-producer")
    app.config.update(
        SSE_RESILIENCE_REDIS_URL=redis.url,
        SSE_RESILIENCE_HEARTBEAT_INTERVAL=5,
        SSE_RESILIENCE_STALE_THRESHOLD=15,
        SSE_RESILIENCE_COMPLETION_TTL=5,
        SSE_RESILIENCE_MAX_STREAMS_PER_USER=100_000,
        SSE_RESILIENCE_GUARDIAN_ENABLED=False,
    )
    sse = SSEResilience(app)
    try:
        ids = [sse.open_stream("soak") for _ in range(args.streams)]
        producers = {sid: sse.producer(sid).__enter__() for sid in ids}
        sent = dict.fromkeys(ids, 0)
        client = subprocess.Popen(
            [sys.executable, "-m", "bench.soakclient", demo.base,
             cookie_for(demo, "soak"), str(args.drop)],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert client.stdin is not None and client.stdout is not None
        client.stdin.write("\n".join(ids) + "\n")
        client.stdin.close()
        workers = demo.workers()
        rss = {pid: [rss_kib(pid)] for pid in workers}
        started = time.monotonic()
        end = started + args.minutes * 60
        published = 0
        next_sample = started + 10
        while time.monotonic() < end:
            sid = random.choice(ids)
            producers[sid].send("token", {"k": sent[sid]})
            sent[sid] += 1
            published += 1
            now = time.monotonic()
            if now >= next_sample:
                for pid in workers:
                    rss[pid].append(rss_kib(pid))
                next_sample = now + 10
            time.sleep(max(0.0, started + published / args.rate - time.monotonic()))
        for sid in ids:
            producers[sid].__exit__(None, None, None)  # completes the stream
        report = json.loads(client.stdout.readline())
        client.wait(60)
        lost = doubled = disordered = 0
        for sid in ids:
            got = report["received"][sid]
            doubled += len(got) - len(set(got))
            lost += sent[sid] - len(set(got))
            disordered += got != sorted(got)
        time.sleep(5 + 3)  # completion TTL, then a margin
        left = sum(
            1
            for pattern in ("{s*}:*", "user:*")
            for _ in redis.client().scan_iter(match=f"sse:{pattern}", count=1000)
        )
        drift = {pid: samples[-1] - samples[0] for pid, samples in rss.items()}
        figures = {
            "minutes": args.minutes,
            "streams": args.streams,
            "published": published,
            "client_drops_and_resumes": report["drops"],
            "lost": lost,
            "doubled": doubled,
            "streams_out_of_order": disordered,
            "redis_stream_keys_left": left,
            "worker_rss_start_kib": {p: s[0] for p, s in rss.items()},
            "worker_rss_drift_kib": drift,
        }
        print(json.dumps(figures, indent=2))
        out = ROOT / "docs" / "soak.json"
        out.write_text(json.dumps(figures, indent=2) + "\n")
    finally:
        app.extensions["sse_resilience"].close()
        demo.stop()
        redis.cleanup()


if __name__ == "__main__":
    main()
