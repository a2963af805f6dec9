"""The demo handing generations to a real ``rq worker`` (examples/rq_worker):
it completes, a cancel reaches the job between tokens, and ``kill -9`` of the
worker ends the stream orphaned."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from flask_sse_resilience.client import cancel, follow
from harness.demo_server import ROOT, Demo, DemoFactory
from harness.redis_server import RedisServer

pytestmark = pytest.mark.e2e


class RQWorker:
    """``rq worker`` (SimpleWorker: jobs run in the worker process)."""

    def __init__(self, demo: Demo) -> None:
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"rq-{demo.port}.log"
        self.log = self.log_path.open("wb")
        env = {**os.environ}
        env.update(
            {f"FLASK_SSE_RESILIENCE_{k}": v for k, v in demo.env.items()},
            FLASK_SECRET_KEY="e2e-secret",
        )
        self.proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "rq"), "worker",
                "--url", demo.redis_url, "-P", str(ROOT),
                "-w", "rq.worker.SimpleWorker", "--logging_level", "WARNING",
                "generations",
            ],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


@pytest.fixture
def rq_demo(
    demo_factory: DemoFactory, redis_server: RedisServer, r: redis.Redis
) -> Iterator[tuple[Demo, RQWorker]]:
    demo = demo_factory(DEMO_QUEUE_URL=redis_server.url)
    worker = RQWorker(demo)
    yield demo, worker
    worker.stop()


def start(demo: Demo, **body: Any) -> tuple[httpx.Client, str]:
    client = demo.client("alice")
    answer = client.post("/generations", json={"prompt": "q", **body})
    assert answer.status_code == 201, answer.text
    return client, str(answer.json()["streamUrl"])


def test_a_job_produces_the_stream(rq_demo: tuple[Demo, RQWorker]) -> None:
    demo, worker = rq_demo
    client, url = start(demo, tokens=30, interval_ms=5)
    events = list(follow(url, client=client, read_timeout=20))
    assert [e.type for e in events] == ["token"] * 30 + ["completed"], worker.output()


def test_cancel_reaches_the_job_between_tokens(rq_demo: tuple[Demo, RQWorker]) -> None:
    demo, worker = rq_demo
    client, url = start(demo, tokens=5000, interval_ms=10)
    events = []
    for event in follow(url, client=client, read_timeout=20):
        events.append(event)
        if len(events) == 20:
            assert cancel(url, client=client, reason="stop")["status"] == "cancelling"
    assert events[-1].type == "cancelled", worker.output()
    end = events[-1].data
    assert end["by"] == "user" and end["reason"] == "stop"
    tokens = "".join(e.data["text"] for e in events if e.type == "token")
    assert tokens == end["partial"]["text"]  # nothing after it saw the request
    assert len(events) < 200


def test_kill_9_of_the_worker_ends_the_stream_orphaned(
    rq_demo: tuple[Demo, RQWorker],
) -> None:
    demo, worker = rq_demo
    client, url = start(demo, tokens=5000, interval_ms=20)
    events = []
    for event in follow(url, client=client, read_timeout=20):
        events.append(event)
        if len(events) == 10:
            worker.proc.send_signal(signal.SIGKILL)
            killed = time.monotonic()
    ended = time.monotonic() - killed
    assert events[-1].type == "failed" and events[-1].data == {"reason": "orphaned"}
    assert ended < 3 + 2 + 2  # stale threshold, a guardian tick, slack
