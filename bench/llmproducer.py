"""The producers of the concurrent-generations benchmark: one gevent process
writing N streams at an LLM's pace, driven over stdin/stdout (one JSON object
per line):

* ``{"cmd": "open", "server": "ours"|"baseline", "n": N, "redis_url": U}``
  opens N streams (ours: ``open_stream``; baseline: a channel each) and
  answers ``{"paths": [...]}``, the URL path of each;
* ``{"cmd": "run", "seconds": S, "rate": R, "coalesce_ms": C}`` sends R
  tokens a second on every stream for S seconds (ours: ``send`` through a
  producer, then ``complete``; baseline: a bare ``PUBLISH`` of the frame) and
  answers ``{"sent": [per stream], "cpu_ms": ...}``;
* ``{"cmd": "quit"}``.

Each token's data is ``{"k": i, "t": epoch, "text": ...}``, about 40 bytes of
JSON plus the timing fields, so one load client measures every server alike.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
import redis  # noqa: E402
from flask import Flask  # noqa: E402
from gevent.fileobject import FileObjectPosix  # noqa: E402

from flask_sse_resilience import SSEResilience  # noqa: E402

TEXT = "a token of text, forty bytes long......"


def cpu_ms() -> float:
    times = os.times()
    return (times.user + times.system) * 1000


class Producers:
    def __init__(self) -> None:
        self.server = ""
        self.ids: list[str] = []
        self.sse: SSEResilience | None = None
        self.redis: redis.Redis | None = None

    def open(self, server: str, n: int, redis_url: str) -> dict[str, Any]:
        self.server = server
        if server == "ours":
            if self.sse is None:
                app = Flask("bench-producers")
                app.config["SSE_RESILIENCE_REDIS_URL"] = redis_url
                self.sse = SSEResilience(
                    app, guardian_enabled=False, max_streams_per_user=100_000,
                    redis_max_connections=64, heartbeat_interval=5,
                    stale_threshold=30,
                )  # fmt: skip
                self.app = app
            self.ids = [self.sse.open_stream("bench", app=self.app) for _ in range(n)]
            return {"paths": [f"/sse/streams/{sid}" for sid in self.ids]}
        pool = redis.BlockingConnectionPool.from_url(redis_url, max_connections=64)
        self.redis = redis.Redis(connection_pool=pool)
        self.ids = [f"g{random.getrandbits(40):x}" for _ in range(n)]
        return {"paths": [f"/s/{name}" for name in self.ids]}

    def run(self, seconds: float, rate: float, coalesce_ms: int) -> dict[str, Any]:
        sent = [0] * len(self.ids)
        start = time.monotonic() + 0.2
        end = start + seconds

        def ours(index: int, sid: str) -> None:
            assert self.sse is not None
            phase = random.random() / rate
            with self.sse.producer(sid, app=self.app, coalesce_ms=coalesce_ms) as out:
                k = 0
                while (due := start + phase + k / rate) < end:
                    pause = due - time.monotonic()
                    if pause > 0:
                        gevent.sleep(pause)
                    out.send("token", {"k": k, "t": time.time(), "text": TEXT})
                    k += 1
                    sent[index] = k
                out.complete({"tokens": k})

        def baseline(index: int, name: str) -> None:
            assert self.redis is not None
            phase = random.random() / rate
            channel = f"bench:{name}"
            k = 0
            while (due := start + phase + k / rate) < end:
                pause = due - time.monotonic()
                if pause > 0:
                    gevent.sleep(pause)
                data = json.dumps({"k": k, "t": time.time(), "text": TEXT})
                self.redis.publish(channel, f"data: {data}\n\n")
                k += 1
                sent[index] = k

        target = ours if self.server == "ours" else baseline
        before = cpu_ms()
        gevent.joinall([gevent.spawn(target, i, sid) for i, sid in enumerate(self.ids)])
        return {"sent": sent, "cpu_ms": cpu_ms() - before}


def main() -> None:
    producers = Producers()
    stdin = FileObjectPosix(sys.stdin.fileno(), "rb")
    for line in stdin:
        command: dict[str, Any] = json.loads(line)
        cmd = command.pop("cmd")
        if cmd == "quit":
            return
        reply = getattr(producers, cmd)(**command)
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
