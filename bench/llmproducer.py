"""The producers of the concurrent-generations benchmark: one gevent process
writing N streams at an LLM's pace, driven over stdin/stdout (one JSON object
per line):

* ``{"cmd": "open", "server": "ours"|"baseline", "n": N, "redis_url": U,
  "coalesce_ms": C}`` opens N streams (ours: ``open_stream``, and enters a
  producer for each; baseline: a channel each) and answers ``{"paths":
  [...]}``, the URL path of each;
* ``{"cmd": "run", "seconds": S, "rate": R}`` sends R tokens a second on
  every stream for S seconds (ours: ``send``; baseline: a bare ``PUBLISH`` of
  the frame), numbering each stream's tokens on from the last run, and
  answers ``{"sent": [per stream, so far], "cpu_ms": ..., "wall_s": ...}``
  (a run behind its schedule lasts longer than S);
* ``{"cmd": "finish"}`` completes every stream of ours;
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
        self.sent: list[int] = []
        self.outs: list[Any] = []
        self.sse: SSEResilience | None = None
        self.redis: redis.Redis | None = None

    def open(
        self, server: str, n: int, redis_url: str, coalesce_ms: int = 0
    ) -> dict[str, Any]:
        self.server = server
        self.sent = [0] * n
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
            self.outs = [
                self.sse.producer(
                    sid, app=self.app, coalesce_ms=coalesce_ms
                ).__enter__()
                for sid in self.ids
            ]
            return {"paths": [f"/sse/streams/{sid}" for sid in self.ids]}
        pool = redis.BlockingConnectionPool.from_url(redis_url, max_connections=64)
        self.redis = redis.Redis(connection_pool=pool)
        self.ids = [f"g{random.getrandbits(40):x}" for _ in range(n)]
        return {"paths": [f"/s/{name}" for name in self.ids]}

    def run(self, seconds: float, rate: float) -> dict[str, Any]:
        """Send ``rate`` tokens a second on every stream for ``seconds``."""
        start = time.monotonic() + 0.2
        end = start + seconds
        sent = self.sent

        def one(index: int) -> None:
            phase = random.random() / rate
            k = 0
            while (due := start + phase + k / rate) < end:
                pause = due - time.monotonic()
                if pause > 0:
                    gevent.sleep(pause)
                data = {"k": sent[index], "t": time.time(), "text": TEXT}
                if self.server == "ours":
                    self.outs[index].send("token", data)
                else:
                    assert self.redis is not None
                    channel = f"bench:{self.ids[index]}"
                    self.redis.publish(channel, f"data: {json.dumps(data)}\n\n")
                sent[index] += 1
                k += 1

        before = cpu_ms()
        gevent.joinall([gevent.spawn(one, i) for i in range(len(self.ids))])
        if self.server == "ours":  # what the last windows hold
            gevent.joinall([gevent.spawn(out.flush) for out in self.outs])
        # A producer behind its schedule sends without pausing, so the run
        # lasts longer than asked: the rate is measured over this (from the
        # scheduled start; the last token is due just before the end).
        wall = time.monotonic() - start
        return {"sent": sent, "cpu_ms": cpu_ms() - before, "wall_s": wall}

    def finish(self) -> dict[str, Any]:
        """Complete every stream (ours)."""
        for out in self.outs:
            out.complete({"tokens": 0})
            out.__exit__(None, None, None)
        self.outs = []
        return {}


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
