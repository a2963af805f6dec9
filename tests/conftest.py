from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from flask import Flask, request, session

from flask_sse_resilience import SSEResilience
from flask_sse_resilience.state import State
from harness.demo_server import Demo, DemoFactory
from harness.redis_server import RedisServer
from harness.redis_topologies import ClusterFixture, SentinelFixture
from tests import scheduling


def pytest_configure(config: pytest.Config) -> None:
    # gunicorn (25 and later) makes its control socket in $XDG_RUNTIME_DIR
    # and removes whatever is there: a folder per test process, so parallel
    # workers' gunicorns never take each other's.
    folder = tempfile.mkdtemp(prefix="sse-test-run-")
    os.environ["XDG_RUNTIME_DIR"] = folder
    config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))


@pytest.hookimpl(optionalhook=True)  # pytest without xdist runs serially
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``-n N``: longest tests first, costly set-ups shared (tests/scheduling)."""
    if config.getoption("dist") != "load":
        return None
    return scheduling.make_scheduler(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        scheduling.longest_first(items)


@pytest.fixture(autouse=True)
def _close_every_app_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Stop the background parts of every app a test made, so a guardian or
    loop a test started never runs into the next test."""
    made: list[State] = []
    init = State.__init__

    def recording(self: State, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(State, "__init__", recording)
    yield
    for state in made:
        state.close()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One private redis-server for the whole session."""
    server = RedisServer().start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def cluster() -> Iterator[ClusterFixture]:
    """A Redis Cluster (three masters, one replica each) for the session."""
    fixture = ClusterFixture().start()
    yield fixture
    fixture.cleanup()


@pytest.fixture(scope="session")
def sentinel() -> Iterator[SentinelFixture]:
    """A master, a replica and three sentinels for the session."""
    fixture = SentinelFixture().start()
    yield fixture
    fixture.cleanup()


@pytest.fixture
def redis_factory() -> Iterator[Callable[[], RedisServer]]:
    """Start throwaway servers a test may kill, pause or restart."""
    servers: list[RedisServer] = []

    def start() -> RedisServer:
        servers.append(RedisServer().start())
        return servers[-1]

    yield start
    for server in servers:
        server.cleanup()


@pytest.fixture
def r(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A client of the session server, flushed before and after the test."""
    client = redis_server.client()
    client.flushall()
    yield client
    client.flushall()
    client.close()


AppFactory = Callable[..., tuple[Flask, SSEResilience]]


@pytest.fixture
def make_app(r: redis.Redis, redis_server: RedisServer) -> Iterator[AppFactory]:
    """Build ``(app, sse)`` from config; the user comes from the session."""
    built: list[Flask] = []

    def factory(config: dict[str, Any] | None = None, **options: Any) -> Any:
        app = Flask(f"test_app_{len(built)}")
        app.config.update(
            SECRET_KEY="test",
            TESTING=True,
            SSE_RESILIENCE_REDIS_URL=redis_server.url,
            SSE_RESILIENCE_HEARTBEAT_INTERVAL=0.3,
            SSE_RESILIENCE_STALE_THRESHOLD=1,
            # These tests look at each write as it happens; test_coalescing
            # covers windows, and the end-to-end suites run the default.
            SSE_RESILIENCE_COALESCE_MS=0,
        )
        app.config.update(config or {})
        sse = SSEResilience(app, identity=lambda: session.get("user"), **options)

        @app.post("/test-login")
        def login() -> str:
            session["user"] = request.get_json()["user"]
            return "ok"

        built.append(app)
        return app, sse

    yield factory
    for app in built:
        app.extensions["sse_resilience"].close()


@pytest.fixture
def demo_factory(redis_server: RedisServer) -> Iterator[DemoFactory]:
    demos: list[Demo] = []

    def start(
        redis_url: str | None = None,
        workers: int = 2,
        extra_bind: str | None = None,
        extra_args: tuple[str, ...] = (),
        config: bool = True,
        **env: str,
    ) -> Demo:
        demos.append(
            Demo(
                redis_url or redis_server.url,
                workers,
                env,
                extra_bind,
                extra_args,
                config=config,
            )
        )
        return demos[-1]

    yield start
    for demo in demos:
        demo.stop()


@pytest.fixture
def demo(demo_factory: DemoFactory, r: object) -> Demo:
    """The demo with 2 gevent workers on the session Redis (flushed)."""
    return demo_factory()
