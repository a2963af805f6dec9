"""The demo app under real gunicorn with gevent workers, on a free loopback port.

Shared by the end-to-end tests and the benchmarks.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from harness.redis_server import free_port

ROOT = Path(__file__).resolve().parents[1]


def wait_until_serving(
    base: str,
    proc: subprocess.Popen[bytes],
    output: Callable[[], str],
    seconds: float = 30,
) -> None:
    """Return once ``GET <base>/`` answers 200; raise with the server's
    ``output()`` if ``proc`` exits or ``seconds`` pass first."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(base + "/", timeout=1, verify=False).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{base} did not start:\n{output()}")
        time.sleep(0.1)


class Demo:
    def __init__(
        self,
        redis_url: str,
        workers: int,
        env: dict[str, str],
        extra_bind: str | None = None,
        extra_args: tuple[str, ...] = (),
        port: int | None = None,
        config: bool = True,
    ) -> None:
        """Start the demo under gunicorn; with ``config`` False, without the
        demo's config file (``-k gevent`` and nothing else of ours)."""
        self.port = port or free_port()
        self.redis_url = redis_url
        #: gunicorn terminates TLS itself when given a certificate.
        self.tls = "--certfile" in extra_args
        scheme = "https" if self.tls else "http"
        self.base = f"{scheme}://127.0.0.1:{self.port}"
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"demo-{self.port}.log"
        environment = {
            **os.environ,
            "FLASK_SSE_RESILIENCE_REDIS_URL": redis_url,
            "FLASK_SSE_RESILIENCE_HEARTBEAT_INTERVAL": "1",
            "FLASK_SSE_RESILIENCE_STALE_THRESHOLD": "3",
            "FLASK_SSE_RESILIENCE_GUARDIAN_INTERVAL": "1",
            "FLASK_SECRET_KEY": "e2e-secret",
            **env,
        }
        #: The demo's settings, by name without the prefix.
        self.env = {
            key.removeprefix("FLASK_SSE_RESILIENCE_"): value
            for key, value in environment.items()
            if key.startswith("FLASK_SSE_RESILIENCE_")
        }
        self.clients: list[httpx.Client] = []
        self.log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "gunicorn",
                *(
                    ["-c", str(ROOT / "examples/demo/gunicorn.conf.py")]
                    if config
                    # Several gunicorns may run at once: no control socket.
                    else ["-k", "gevent", "--no-control-socket"]
                ),
                "--bind", f"127.0.0.1:{self.port}",
                *(["--bind", f"{extra_bind}:{self.port}"] if extra_bind else []),
                *extra_args,
                "--workers", str(workers),
                "examples.demo.app:create_app()",
            ],
            cwd=ROOT,
            env=environment,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_until_serving(self.base, self.proc, self.output)

    def producer_app(self) -> tuple[Any, Any]:
        """``(app, sse)``: an app of the test's own on the demo's Redis, with
        the demo's heartbeat and stale threshold (a producer must beat as
        often as the demo's guardian expects) and no guardian of its own."""
        from flask import Flask

        from flask_sse_resilience import SSEResilience

        app = Flask("producer")
        app.config.update(
            SSE_RESILIENCE_REDIS_URL=self.redis_url,
            SSE_RESILIENCE_HEARTBEAT_INTERVAL=float(self.env["HEARTBEAT_INTERVAL"]),
            SSE_RESILIENCE_STALE_THRESHOLD=float(self.env["STALE_THRESHOLD"]),
            SSE_RESILIENCE_GUARDIAN_ENABLED=False,
        )
        return app, SSEResilience(app)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def client(self, user: str | None = None) -> httpx.Client:
        client = httpx.Client(base_url=self.base, timeout=10, verify=not self.tls)
        self.clients.append(client)
        if user is not None:
            client.post("/login", json={"user": user}).raise_for_status()
        return client

    def workers(self) -> list[int]:
        """PIDs of the current gunicorn workers."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(pid) for pid in children.read_text().split()]

    def stop(self, graceful: bool = False) -> None:
        """Stop gunicorn: SIGQUIT (quick) by default, SIGTERM when ``graceful``."""
        for client in self.clients:
            client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM if graceful else signal.SIGQUIT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


DemoFactory = Callable[..., Demo]
