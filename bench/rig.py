"""The bench's rig, shared by every scenario module: the servers under test
(ours under the demo's gunicorn, flask-sse, the raw gevent baseline,
sse-starlette on uvicorn), the
separate load-client process, a process's CPU time, and progress output."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis as redis_py
from flask import Flask

from bench.core import Driven, cookie_for
from flask_sse_resilience import SSEResilience
from harness.demo_server import Demo
from harness.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parents[1]


def cpu_ms(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    return ticks * 1000 / os.sysconf("SC_CLK_TCK")


class LoadClient(Driven):
    """The separate gevent process holding the SSE connections."""

    def __init__(self) -> None:
        super().__init__("bench.loadclient")


@dataclass
class Server:
    """One server under test: how to start it, follow it and publish to it."""

    name: str
    redis: RedisServer
    port: int = 0
    path: str = ""
    cookie: str = ""
    proc: Any = None
    demo: Demo | None = None
    publisher: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    def start(self) -> None:
        env = {**os.environ, "BENCH_REDIS_URL": self.redis.url}
        if self.name == "ours":
            self.demo = Demo(self.redis.url, 1, {
                "FLASK_SSE_RESILIENCE_HEARTBEAT_INTERVAL": "15",
                "FLASK_SSE_RESILIENCE_STALE_THRESHOLD": "30",
                "FLASK_SSE_RESILIENCE_GUARDIAN_INTERVAL": "30",
                "FLASK_SSE_RESILIENCE_MAX_CONNECTIONS_PER_USER": "100000",
                "FLASK_SSE_RESILIENCE_MAX_EVENTS": "1000000",
                "DEMO_WORKER_CONNECTIONS": "12000",
            })  # fmt: skip
            self.port, self.proc = self.demo.port, self.demo.proc
            self.cookie = cookie_for(self.demo, "bench")
            app = Flask("bench-publisher")
            app.config["SSE_RESILIENCE_REDIS_URL"] = self.redis.url
            self.extra["app"] = app
            # A log long enough for the whole saturate run: a client further
            # behind than the cap would get a `reset` (by design), not events.
            # No coalescing: these figures time one event from send to client
            # (bench/llm.py measures coalescing).
            self.extra["sse"] = SSEResilience(app, guardian_enabled=False,
                                              max_streams_per_user=100_000,
                                              max_events=1_000_000,
                                              coalesce_ms=0)  # fmt: skip
            return
        self.port = free_port()
        target = {
            "flask-sse": "bench.servers.flask_sse_app:app",
            "baseline": "bench.servers.baseline_app:app",
            "sse-starlette": "bench.servers.starlette_app:app",
        }[self.name]
        self.path = "/stream?channel=bench" if self.name == "flask-sse" else "/"
        if self.name == "sse-starlette":
            # uvicorn as its docs run it: one process, its event loop (uvloop
            # and httptools, from uvicorn[standard]).
            command = [
                sys.executable, "-m", "uvicorn", target,
                "--host", "127.0.0.1", "--port", str(self.port),
                "--log-level", "warning", "--no-access-log",
                "--timeout-graceful-shutdown", "1",
            ]  # fmt: skip
        else:
            command = [
                sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", "1",
                "--worker-connections", "12000", "--no-control-socket",
                "--bind", f"127.0.0.1:{self.port}", "--log-level", "warning",
                target,
            ]  # fmt: skip
        self.proc = subprocess.Popen(command, cwd=ROOT, env=env)
        # Ready once the worker answers a request (flask-sse: a 404): a
        # worker still booting ignores the quick-shutdown signal of stop().
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"GET /ready HTTP/1.0\r\n\r\n")
                    if s.recv(16).startswith(b"HTTP/"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start") from None
            time.sleep(0.1)
        self.extra["redis"] = redis_py.Redis.from_url(self.redis.url)

    @property
    def worker(self) -> int:
        """The PID of the process serving the clients: gunicorn's one worker,
        once it is forked (the master accepts connections on its socket
        before that); uvicorn serves in its own process."""
        if self.name == "sse-starlette":
            return int(self.proc.pid)
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        deadline = time.monotonic() + 20
        while not (pids := children.read_text().split()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: no gunicorn worker")
            time.sleep(0.05)
        (pid,) = (int(p) for p in pids)
        return pid

    @contextmanager
    def stream(self) -> Iterator[Callable[[int], None]]:
        """A fresh stream to follow; yields publish(k)."""
        if self.name == "ours":
            sse = self.extra["sse"]
            sid = sse.open_stream("bench")
            self.path = f"/sse/streams/{sid}"
            with sse.producer(sid) as out:
                yield lambda k: out.send("token", {"k": k, "t": time.time()})
            return
        client = self.extra["redis"]
        if self.name == "flask-sse":
            yield lambda k: client.publish(
                "bench", json.dumps({"data": {"k": k, "t": time.time()}})
            )
        elif self.name == "sse-starlette":  # the data; sse-starlette frames it
            yield lambda k: client.publish("bench", f'{{"k":{k},"t":{time.time()}}}')
        else:
            yield lambda k: client.publish(
                "bench", f'data: {{"k":{k},"t":{time.time()}}}\n\n'
            )

    def stop(self) -> None:
        if self.demo is not None:
            self.extra["app"].extensions["sse_resilience"].close()
            self.demo.stop()
        elif self.proc is not None:
            # SIGQUIT, gunicorn's quick shutdown: SIGTERM waits for every held
            # stream to end (30 s at most, which flask-sse's never do); uvicorn
            # waits its --timeout-graceful-shutdown after SIGTERM.
            quick = signal.SIGTERM if self.name == "sse-starlette" else signal.SIGQUIT
            self.proc.send_signal(quick)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


_STARTED = time.monotonic()


def say(*parts: Any) -> None:
    """Progress on stderr, with the minutes since the suite started."""
    elapsed = (time.monotonic() - _STARTED) / 60
    print(f"[{elapsed:5.1f} min]", *parts, file=sys.stderr, flush=True)
