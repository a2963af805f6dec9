"""``flask run`` (Werkzeug's development server: threads, no gevent) serves
streams, resumes them, runs the guardian, and exits promptly on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis

from flask_sse_resilience.client import follow
from flask_sse_resilience.store.keys import Keys
from harness.demo_server import wait_until_serving
from harness.redis_server import RedisServer, free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
KEYS = Keys("sse:")


def test_the_development_server(redis_server: RedisServer, r: redis.Redis) -> None:
    port = free_port()
    env = {
        **os.environ,
        "FLASK_SSE_RESILIENCE_REDIS_URL": redis_server.url,
        "FLASK_SSE_RESILIENCE_HEARTBEAT_INTERVAL": "1",
        "FLASK_SSE_RESILIENCE_STALE_THRESHOLD": "3",
        "FLASK_SSE_RESILIENCE_GUARDIAN_INTERVAL": "1",
        "FLASK_SECRET_KEY": "dev-secret",
    }
    log = ROOT / "test-artifacts" / f"flask-run-{port}.log"
    log.parent.mkdir(exist_ok=True)
    out = log.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "examples.demo.app:create_app()",
         "run", "--port", str(port)],
        cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
    )  # fmt: skip
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    try:
        wait_until_serving(str(client.base_url).rstrip("/"), proc, log.read_text)
        client.post("/login", json={"user": "alice"}).raise_for_status()
        body = {"tokens": 40, "interval_ms": 50}
        url = client.post("/generations", json=body).json()["streamUrl"]
        # Streams: the first ten tokens, live; then the connection drops.
        first = []
        for event in follow(url, client=client):
            first.append(event)
            if len(first) == 10:
                break
        # Resumes from the cursor, nothing lost or doubled.
        rest = list(follow(url, client=client, last_event_id=first[-1].id))
        tokens = [e.data["index"] for e in first + rest if e.type == "token"]
        assert tokens == list(range(40)) and rest[-1].type == "completed"
        # The guardian runs in the server's process.
        deadline = time.monotonic() + 10
        while not r.get(KEYS.guardian_leader) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert int(str(r.get(KEYS.guardian_leader)).split(":")[1]) == proc.pid
        # Ctrl-C with a stream open: the server exits promptly.
        url = client.post("/generations", json=body).json()["streamUrl"]
        with client.stream("GET", url) as response:
            next(response.iter_lines())
            sent = time.monotonic()
            proc.send_signal(signal.SIGINT)
            proc.wait(5)
        print(f"flask run exited {time.monotonic() - sent:.2f} s after Ctrl-C")
    finally:
        client.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        out.close()
