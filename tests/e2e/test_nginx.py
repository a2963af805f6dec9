"""Behind a real nginx running the shipped examples/deploy/nginx.conf on a
fresh prefix: tokens arrive as produced, streams resume across a worker kill,
an ended stream is recovered, and a server-wide ``gzip on`` leaves every
event stream (the multiplexed one too) uncompressed and unbuffered."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from flask_sse_resilience.client import follow
from harness.demo_server import Demo, DemoFactory
from harness.nginx import CONF, NGINX, Nginx, make_certificate
from harness.redis_server import free_port

pytestmark = pytest.mark.e2e


def need_nginx() -> None:
    if not os.path.exists(NGINX):
        message = f"{NGINX} is missing (make test installs Debian's nginx)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def proxied(demo_factory: DemoFactory) -> Iterator[tuple[Demo, Nginx]]:
    need_nginx()
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
    body = {"tokens": 10, "interval_ms": 200}
    url = client.post("/generations", json=body).json()["streamUrl"]
    late = []
    with client.stream("GET", url) as response:
        assert response.http_version == protocol
        # nginx consumed X-Accel-Buffering (it never forwards X-Accel-*).
        assert "X-Accel-Buffering" not in response.headers
        assert response.headers["Cache-Control"] == "no-cache, no-transform"
        written = 0.0
        for line in response.iter_lines():
            if line.startswith("id: "):
                # An event's id is its log id, <ms>-<n>: when Redis wrote it
                # (same host, same clock).
                written = int(line[4:].split("-")[0]) / 1000
            if '"type":"token"' in line:
                late.append(time.time() - written)
            if '"type":"completed"' in line:
                break
    client.close()
    print(f"{protocol} through nginx: tokens at most {max(late) * 1000:.0f} ms "
          f"after being written")  # fmt: skip
    assert len(late) == 10
    # Each within 100 ms of its write: a buffering proxy would hold one for
    # the next (200 ms later) or to the end.
    assert max(late) < 0.1


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


#: What real sites often have at server level: gzip on, event streams included.
GZIP = "gzip on; gzip_types text/event-stream application/json;"
#: The shipped file's streaming location as it was: /sse/streams/ only.
OLD_LOCATION = (
    "location ~ ^/sse/(streams/|multi$|_dashboard/stream$) {",
    "location /sse/streams/ {",
)


def multiplexed(nginx: Nginx) -> tuple[str | None, list[float]]:
    """Two generations followed on one ``/sse/multi`` response through
    ``nginx``, asking for gzip: its ``Content-Encoding`` and how late each
    token arrived after it was produced."""
    client = login(nginx.http)
    body = {"tokens": 8, "interval_ms": 200}
    started = time.monotonic()
    ids = [client.post("/generations", json=body).json()["streamId"] for _ in "ab"]
    late: list[float] = []
    counts = dict.fromkeys(ids, 0)
    ended = set()
    url = f"/sse/multi?streams={','.join(ids)}"
    with client.stream("GET", url, headers={"Accept-Encoding": "gzip"}) as response:
        encoding = response.headers.get("Content-Encoding")
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue
            envelope = json.loads(line[5:])
            stream = envelope.get("stream")
            if envelope["type"] == "token":
                # Token k of each stream is produced about k * 0.2 s in.
                late.append(time.monotonic() - started - counts[stream] * 0.2)
                counts[stream] += 1
            elif envelope["type"] == "completed":
                ended.add(stream)
                if ended == set(ids):
                    break
    client.close()
    assert counts == dict.fromkeys(ids, 8)
    return encoding, late


def test_server_wide_gzip_leaves_the_multiplexed_stream_alone(
    demo_factory: DemoFactory,
) -> None:
    """Real configs turn gzip on for the whole server. The shipped file's
    streaming location covers every event stream, so the multiplexed one
    still arrives uncompressed, each token as it is produced. The control,
    the file as it was (a location for /sse/streams/ only), proves the gzip
    here is real: there the multiplexed stream comes compressed."""
    need_nginx()
    assert OLD_LOCATION[0] in CONF.read_text()
    demo = demo_factory()
    shipped = Nginx(demo.port, server_extra=GZIP)
    try:
        encoding, late = multiplexed(shipped)
    finally:
        shipped.stop()
    assert encoding is None
    assert max(late) < 0.15, late  # none held back in a compressor's buffer

    old = Nginx(demo.port, server_extra=GZIP, replace=(OLD_LOCATION,))
    try:
        encoding, _ = multiplexed(old)
    finally:
        old.stop()
    assert encoding == "gzip"


def test_the_documented_command_runs_on_a_fresh_prefix(tmp_path: Path) -> None:
    """``nginx -p <prefix> -c <prefix>/nginx.conf``, the prefix holding
    nothing but the file and its certificate: nginx makes its temp
    directories itself (``nginx -t`` opens and makes them as a start
    does)."""
    need_nginx()
    make_certificate(tmp_path)
    conf = CONF.read_text().replace("127.0.0.1:8080", f"127.0.0.1:{free_port()}")
    conf = conf.replace("127.0.0.1:8443", f"127.0.0.1:{free_port()}")
    (tmp_path / "nginx.conf").write_text(conf)
    result = subprocess.run(
        [NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-t"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
    made = {p.name for p in tmp_path.iterdir() if p.is_dir()}
    assert {"client_body_temp", "proxy_temp"} <= made
