"""gunicorn as people start it: with the demo's config file, with no config
file at all (``-k gevent``), and with ``--preload``. In every mode the
guardian runs in a worker (never the master), a stop or reload ends each open
stream within 1 s with a ``retry:`` hint so the client resumes elsewhere, and
the server log holds no warning."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from flask_sse_resilience.client import follow
from flask_sse_resilience.store.keys import Keys
from harness.demo_server import ROOT, Demo, DemoFactory, wait_until_serving
from harness.redis_server import free_port

pytestmark = pytest.mark.e2e

KEYS = Keys("sse:")

MODES = {
    "config file": {"config": True},
    "no config": {"config": False},
    "no config, --preload": {"config": False, "extra_args": ("--preload",)},
}


class Reader(threading.Thread):
    """Reads one stream response to its end, noting when and how it ended."""

    def __init__(self, client: httpx.Client, url: str) -> None:
        super().__init__(daemon=True)
        self.client, self.url = client, url
        self.tokens = 0
        self.last_id: str | None = None
        self.retry = False
        self.ended_at = 0.0

    def run(self) -> None:
        with self.client.stream("GET", self.url, timeout=30) as response:
            for line in response.iter_lines():
                if line.startswith("id: "):
                    self.last_id = line[4:]
                elif line.startswith("retry:"):
                    self.retry = True
                elif line.startswith("data: ") and '"type":"token"' in line:
                    self.tokens += 1
        self.ended_at = time.monotonic()


def stream_during(demo: Demo, sig: signal.Signals) -> tuple[Reader, float, str, Any]:
    """Start a generation, follow it, and send ``sig`` to gunicorn's master
    after a few tokens; return the reader, the signal's time, the URL and
    the client."""
    client = demo.client("alice")
    body = {"tokens": 100, "interval_ms": 50}
    url = client.post("/generations", json=body).json()["streamUrl"]
    reader = Reader(client, url)
    reader.start()
    deadline = time.monotonic() + 10
    while reader.tokens < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert reader.tokens >= 5
    sent = time.monotonic()
    demo.proc.send_signal(sig)
    reader.join(10)
    assert not reader.is_alive(), "the stream response did not end"
    return reader, sent, url, client


def clean_log(demo: Demo) -> None:
    log = demo.output()
    assert "warning" not in log.lower() and "Traceback" not in log, log[-3000:]


def guardian_in_a_worker(demo: Demo, r: redis.Redis) -> None:
    deadline = time.monotonic() + 10
    while not r.get(KEYS.guardian_leader) and time.monotonic() < deadline:
        time.sleep(0.1)
    leader = r.get(KEYS.guardian_leader)
    assert leader, "no guardian ran"
    pid = int(str(leader).split(":")[1])
    assert pid != demo.proc.pid and pid in demo.workers()


@pytest.mark.parametrize("mode", list(MODES))
def test_a_reload_moves_streams_within_a_second(
    mode: str, demo_factory: DemoFactory, r: redis.Redis
) -> None:
    demo = demo_factory(workers=1, **MODES[mode])
    reader, sent, url, client = stream_during(demo, signal.SIGHUP)
    took = reader.ended_at - sent
    print(f"{mode}: SIGHUP to the end of the stream response {took * 1000:.0f} ms")
    assert reader.retry and took < 1.0
    # The client resumes on the new worker and misses nothing.
    rest = list(follow(url, client=client, last_event_id=reader.last_id))
    tokens = [e.data["index"] for e in rest if e.type == "token"]
    assert tokens == list(range(reader.tokens, 100))
    assert rest[-1].type == "completed"
    guardian_in_a_worker(demo, r)
    demo.stop(graceful=True)
    clean_log(demo)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGQUIT])
def test_a_stop_ends_streams_within_a_second_without_config(
    sig: signal.Signals, demo_factory: DemoFactory
) -> None:
    demo = demo_factory(workers=1, config=False)
    reader, sent, _, _ = stream_during(demo, sig)
    took = reader.ended_at - sent
    print(f"{sig.name}: to the end of the stream response {took * 1000:.0f} ms")
    assert reader.retry and took < 1.0
    demo.proc.wait(40)
    clean_log(demo)


def test_make_demo_starts_clean_and_stops_its_redis() -> None:
    """``make demo``'s script (examples/demo/run.sh): its own private Redis
    when none is configured, a generation end to end, a log without any
    warning, and nothing left running after Ctrl-C."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASK_SSE")}
    env.update(DEMO_BIND=f"127.0.0.1:{port}", VENV=str(ROOT / ".venv"))
    if not (ROOT / ".venv" / "bin" / "gunicorn").exists():
        env["VENV"] = str(Path(sys.executable).parents[1])
    log = ROOT / "test-artifacts" / f"make-demo-{port}.log"
    log.parent.mkdir(exist_ok=True)
    out = log.open("wb")
    proc = subprocess.Popen(
        ["sh", "examples/demo/run.sh"], cwd=ROOT, env=env, stdout=out,
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        wait_until_serving(str(client.base_url).rstrip("/"), proc, log.read_text)
        client.post("/login", json={"user": "alice"}).raise_for_status()
        body = {"tokens": 5, "interval_ms": 10}
        url = client.post("/generations", json=body).json()["streamUrl"]
        assert [e.type for e in follow(url, client=client)][-1] == "completed"
        client.close()
        redis_port = int(
            log.read_text().split("private redis-server on port ")[1].split()[0]
        )
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in the terminal
        proc.wait(30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        out.close()
    text = log.read_text()
    assert "warning" not in text.lower() and "Traceback" not in text, text[-3000:]
    with pytest.raises(OSError):  # its private Redis is gone with it
        socket.create_connection(("127.0.0.1", redis_port), 1).close()
