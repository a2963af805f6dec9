"""Redis memory per stream and per event, measured: ``python -m
bench.memory`` (the figures in docs/operations.rst, "Sizing").

On a private redis-server (no ``maxmemory``, no persistence), through the
package's own producer: ``used_memory`` (``INFO memory``, what Redis compares
with ``maxmemory``) before and after opening ``--streams`` streams (one
user each, as in a chat app), after each has sent ``--events`` token events
(``{"text": <20 characters>}``), after each has completed, and the same for
1 KiB events (a string of 1,024 characters) on fresh streams;
``MEMORY USAGE`` of each key of one stream says where the bytes go. Every
figure is a delta divided by the count, so fixed costs (scripts, the
client's connections) drop out.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from typing import Any

import redis
from flask import Flask

from flask_sse_resilience import SSEResilience
from flask_sse_resilience.store.keys import Keys
from harness.redis_server import RedisServer

TOKEN = {"text": "x" * 20}
KIB = "x" * 1024


def used(client: redis.Redis) -> int:
    time.sleep(0.3)  # let query buffers and the like be freed
    return int(client.info("memory")["used_memory"])


def app_on(url: str) -> tuple[Flask, SSEResilience]:
    app = Flask("memory")
    app.config.update(
        SSE_RESILIENCE_REDIS_URL=url,
        SSE_RESILIENCE_COALESCE_MS=0,
        SSE_RESILIENCE_GUARDIAN_ENABLED=False,
        SSE_RESILIENCE_HEARTBEAT_INTERVAL=60,  # no heartbeat during a phase
        SSE_RESILIENCE_STALE_THRESHOLD=600,
    )
    return app, SSEResilience(app)


def run(streams: int, events: int, data: Any, label: str) -> dict[str, Any]:
    server = RedisServer().start()
    admin = server.client()
    app, sse = app_on(server.url)
    keys = Keys("sse:")
    try:
        warm = sse.open_stream("warm", app=app)  # loads every script
        with sse.producer(warm, app=app) as out:
            out.send("token", data)
        admin.flushall()
        base = used(admin)
        ids = [sse.open_stream(f"user{i}", "chat", app=app) for i in range(streams)]
        opened = used(admin)
        producers = [sse.producer(sid, app=app) for sid in ids]
        for out in producers:
            out.__enter__()
        claimed = used(admin)
        for out in producers:
            for _ in range(events):
                out.send("token", data)
        sent = used(admin)
        sample = ids[0]
        usage = {
            "record": admin.memory_usage(keys.stream(sample), samples=0),
            "log": admin.memory_usage(keys.log(sample), samples=0),
        }
        for out in producers:
            out.__exit__(None, None, None)  # completes it
        done = used(admin)
        usage["completion"] = admin.memory_usage(keys.completion(sample), samples=0)
        usage["ended record"] = admin.memory_usage(keys.stream(sample), samples=0)
        usage["ended log"] = admin.memory_usage(keys.log(sample), samples=0)
        return {
            "label": label,
            "streams": streams,
            "events": events,
            "event bytes (JSON)": len(json.dumps(data)),
            "per open stream": round((opened - base) / streams),
            "per producer's claim": round((claimed - opened) / streams),
            "per event": round((sent - claimed) / (streams * events), 1),
            "per completed stream, its events kept": round((done - base) / streams),
            "completion adds": round((done - sent) / streams),
            "MEMORY USAGE of one stream's keys": usage,
            "used_memory before/after": [base, sent],
        }
    finally:
        app.extensions["sse_resilience"].close()
        server.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--events", type=int, default=100)
    args = parser.parse_args()
    logging.getLogger("flask_sse_resilience").setLevel(logging.ERROR)
    probe = RedisServer().start()
    print("redis", probe.client().info("server")["redis_version"], flush=True)
    probe.cleanup()
    for data, label in ((TOKEN, "20-byte token"), (KIB, "1 KiB event")):
        for streams, events in ((args.streams, args.events), (100, 1000)):
            print(json.dumps(run(streams, events, data, label)), flush=True)


if __name__ == "__main__":
    main()
