"""Behind a real nginx running the shipped examples/deploy/nginx.conf:
tokens arrive as produced, streams resume across a worker kill, an ended
stream is recovered."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import httpx
import pytest

from flask_sse_resilience.client import follow
from harness.demo_server import Demo, DemoFactory
from harness.nginx import NGINX, Nginx

pytestmark = pytest.mark.e2e


@pytest.fixture
def proxied(demo_factory: DemoFactory) -> Iterator[tuple[Demo, Nginx]]:
    if not os.path.exists(NGINX):
        message = f"{NGINX} is missing (make test installs Debian's nginx)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    demo = demo_factory()
    nginx = Nginx(demo.port)
    yield demo, nginx
    nginx.stop()


def login(base: str, **kwargs: object) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=20, **kwargs)  # type: ignore[arg-type]
    client.post("/login", json={"user": "alice"}).raise_for_status()
    return client


@pytest.mark.parametrize("protocol", ["HTTP/1.1", "HTTP/2"])
def test_tokens_arrive_through_nginx_as_they_are_produced(
    protocol: str, proxied: tuple[Demo, Nginx]
) -> None:
    _, nginx = proxied
    if protocol == "HTTP/2":
        client = login(nginx.https, http2=True, verify=False)
    else:
        client = login(nginx.http)
    started = time.monotonic()
    body = {"tokens": 10, "interval_ms": 200}
    url = client.post("/generations", json=body).json()["streamUrl"]
    late = []
    with client.stream("GET", url) as response:
        assert response.http_version == protocol
        # nginx consumed X-Accel-Buffering (it never forwards X-Accel-*).
        assert "X-Accel-Buffering" not in response.headers
        assert response.headers["Cache-Control"] == "no-cache, no-transform"
        for line in response.iter_lines():
            if '"type":"token"' in line:
                index = len(late)
                # Token k is sent about k * 0.2 s after the POST started it.
                late.append(time.monotonic() - started - index * 0.2)
            if '"type":"completed"' in line:
                break
    client.close()
    print(f"{protocol} through nginx: tokens at most {max(late) * 1000:.0f} ms "
          f"after being produced")  # fmt: skip
    assert len(late) == 10
    assert max(late) < 0.1  # each within 100 ms, none held back to the end


def test_resume_across_a_worker_kill_and_recover_after_the_end(
    proxied: tuple[Demo, Nginx],
) -> None:
    demo, nginx = proxied
    client = login(nginx.http)
    body = {"tokens": 60, "interval_ms": 50}
    url = client.post("/generations", json=body).json()["streamUrl"]
    with client.stream("GET", url) as response:
        worker = int(response.headers["X-Demo-Worker"])
    events = []
    for event in follow(url, client=client, base_delay=0.1):
        events.append(event)
        if len(events) == 15:
            os.kill(worker, signal.SIGKILL)  # the worker serving this stream
    tokens = [e.data["index"] for e in events if e.type == "token"]
    # The producer died with its worker: the guardian ends the stream, and
    # every token it logged arrives exactly once.
    assert tokens == list(range(len(tokens))) and len(tokens) >= 15
    assert events[-1].type in ("completed", "failed")
    # After the end: the terminal event from /recover, through nginx.
    again = list(follow(url, client=client))
    assert [(e.type, e.id) for e in again] == [(events[-1].type, events[-1].id)]
    client.close()
