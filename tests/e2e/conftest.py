"""The demo under real gunicorn with gevent workers, on a free loopback port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from ..redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parents[2]


class Demo:
    def __init__(self, redis_url: str, workers: int, env: dict[str, str]) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"demo-{self.port}.log"
        environment = {
            **os.environ,
            "FLASK_SSE_RESILIENCE_REDIS_URL": redis_url,
            "FLASK_SSE_RESILIENCE_HEARTBEAT_INTERVAL": "1",
            "FLASK_SSE_RESILIENCE_STALE_THRESHOLD": "3",
            "FLASK_SECRET_KEY": "e2e-secret",
            **env,
        }
        self.clients: list[httpx.Client] = []
        self.log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "gunicorn",
                "-c", str(ROOT / "examples/demo/gunicorn.conf.py"),
                "--bind", f"127.0.0.1:{self.port}",
                "--workers", str(workers),
                "examples.demo.app:create_app()",
            ],
            cwd=ROOT,
            env=environment,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.base + "/", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"demo did not start:\n{self.output()}")
            time.sleep(0.1)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def client(self, user: str | None = None) -> httpx.Client:
        client = httpx.Client(base_url=self.base, timeout=10)
        self.clients.append(client)
        if user is not None:
            client.post("/login", json={"user": user}).raise_for_status()
        return client

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


DemoFactory = Callable[..., Demo]


@pytest.fixture
def demo_factory(redis_server: RedisServer) -> Iterator[DemoFactory]:
    demos: list[Demo] = []

    def start(redis_url: str | None = None, workers: int = 2, **env: str) -> Demo:
        demos.append(Demo(redis_url or redis_server.url, workers, env))
        return demos[-1]

    yield start
    for demo in demos:
        demo.stop()


@pytest.fixture
def demo(demo_factory: DemoFactory, r: object) -> Demo:
    """The demo with 2 gevent workers on the session Redis (flushed)."""
    return demo_factory()
