"""The demo under real gunicorn with gevent workers, on a free loopback port."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from ..demo_server import Demo
from ..redis_server import RedisServer

DemoFactory = Callable[..., Demo]


@pytest.fixture
def demo_factory(redis_server: RedisServer) -> Iterator[DemoFactory]:
    demos: list[Demo] = []

    def start(
        redis_url: str | None = None,
        workers: int = 2,
        extra_bind: str | None = None,
        extra_args: tuple[str, ...] = (),
        **env: str,
    ) -> Demo:
        demos.append(
            Demo(redis_url or redis_server.url, workers, env, extra_bind, extra_args)
        )
        return demos[-1]

    yield start
    for demo in demos:
        demo.stop()


@pytest.fixture
def demo(demo_factory: DemoFactory, r: object) -> Demo:
    """The demo with 2 gevent workers on the session Redis (flushed)."""
    return demo_factory()
