"""End to end: the demo under gunicorn -k gevent, read by httpx-sse."""

from __future__ import annotations

import json
import random
import socket
import time
from typing import Any

import httpx
import pytest
from httpx_sse import ServerSentEvent, connect_sse

from flask_sse_resilience.store.keys import Keys
from harness.demo_server import Demo, DemoFactory
from harness.redis_server import RedisServer

KEYS = Keys("sse:")

pytestmark = pytest.mark.e2e


def start_generation(client: httpx.Client, **params: Any) -> str:
    body = {"prompt": "the quick brown fox", "tokens": 20, "interval_ms": 20}
    body.update(params)
    response = client.post("/generations", json=body)
    assert response.status_code == 201, response.text
    payload = response.json()
    assert payload["streamUrl"] == f"/sse/streams/{payload['streamId']}"
    return str(payload["streamUrl"])


def envelope(event: ServerSentEvent) -> dict[str, Any]:
    value = json.loads(event.data)
    assert isinstance(value, dict)
    return value


def follow(
    client: httpx.Client, url: str, last_event_id: str | None = None, limit: int = 0
) -> tuple[list[ServerSentEvent], str]:
    """Read events until the stream ends (or ``limit``); return them and the worker."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    events: list[ServerSentEvent] = []
    with connect_sse(client, "GET", url, headers=headers) as source:
        source.response.raise_for_status()
        worker = source.response.headers["X-Demo-Worker"]
        for event in source.iter_sse():
            if event.event == "heartbeat":
                continue
            events.append(event)
            if limit and len(events) >= limit:
                break
    return events, worker


def test_a_generation_streams_to_completion(demo: Demo) -> None:
    client = demo.client("alice")
    url = start_generation(client, prompt="exact  prompt\nwith ✓ unicode")
    events, _ = follow(client, url)
    kinds = [envelope(e)["type"] for e in events]
    assert kinds == ["connected"] + ["token"] * 20 + ["completed"]
    tokens = [envelope(e)["data"] for e in events[1:-1]]
    assert [t["index"] for t in tokens] == list(range(20))
    final = envelope(events[-1])["data"]
    assert final["prompt"] == "exact  prompt\nwith ✓ unicode"
    assert final["text"] == "".join(t["text"] for t in tokens)


def test_resume_on_the_other_worker_loses_and_doubles_nothing(demo: Demo) -> None:
    rng = random.Random()
    client = demo.client("alice")
    url = start_generation(client, tokens=60, interval_ms=15)
    cut = rng.randint(3, 40)
    first, first_worker = follow(client, url, limit=cut)
    last_id = first[-1].id
    # Reconnect (new TCP connection each time) until the other worker answers.
    for _ in range(50):
        with httpx.Client(base_url=demo.base, cookies=client.cookies) as fresh:
            rest, worker = follow(fresh, url, last_event_id=last_id, limit=1)
        if worker != first_worker:
            break
    else:
        pytest.fail("never reached the second worker")
    with httpx.Client(base_url=demo.base, cookies=client.cookies) as fresh:
        for _ in range(50):
            headers = {"Last-Event-ID": last_id}
            with connect_sse(fresh, "GET", url, headers=headers) as source:
                if source.response.headers["X-Demo-Worker"] == first_worker:
                    continue
                rest = [e for e in source.iter_sse() if e.event != "heartbeat"]
                break
    indexes = [
        envelope(e)["data"]["index"]
        for e in first[1:] + rest[1:]
        if envelope(e)["type"] == "token"
    ]
    assert indexes == list(range(60)), f"cut after {cut} events"
    assert envelope(rest[-1])["type"] == "completed"


def test_reconnect_after_completion_gets_the_result_at_once(demo: Demo) -> None:
    client = demo.client("alice")
    url = start_generation(client, tokens=3, interval_ms=0)
    events, _ = follow(client, url)
    assert envelope(events[-1])["type"] == "completed"
    started = time.monotonic()
    again, _ = follow(client, url)
    elapsed = time.monotonic() - started
    assert [envelope(e)["type"] for e in again] == ["connected", "completed"]
    assert again[-1].id == events[-1].id
    assert envelope(again[-1])["data"] == envelope(events[-1])["data"]
    assert elapsed < 1.0  # no waiting for a heartbeat: it is sent at once
    recovered = client.get(url + "/recover").json()
    assert recovered["status"] == "completed"
    # A client that has the terminal event is told to stop (EventSource: 204).
    done = client.get(url, headers={"Last-Event-ID": events[-1].id})
    assert done.status_code == 204


def test_a_failing_generation_ends_failed(demo: Demo) -> None:
    client = demo.client("alice")
    url = start_generation(client, tokens=10, interval_ms=5, fail_after=4)
    events, _ = follow(client, url)
    kinds = [envelope(e)["type"] for e in events]
    assert kinds == ["connected"] + ["token"] * 4 + ["failed"]
    assert client.get(url + "/recover").json()["status"] == "failed"


def test_another_user_gets_404_and_nobody_gets_401(demo: Demo) -> None:
    url = start_generation(demo.client("alice"), tokens=2)
    for path in (url, url + "/recover"):
        response = demo.client("mallory").get(path)
        assert response.status_code == 404
        assert response.json()["error"] == "stream_not_found"
        anonymous = demo.client().get(path)
        assert anonymous.status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"tokens": "many"}',
        b'{"tokens": 0}',
        b'{"tokens": true}',
        b'{"tokens": 5, "fail_after": 9}',
        b'{"interval_ms": -1}',
        b'{"prompt": 7}',
    ],
)
def test_bad_generation_bodies_are_400(demo: Demo, body: bytes) -> None:
    client = demo.client("alice")
    response = client.post(
        "/generations", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"


def test_oversized_body_is_413_json(demo: Demo) -> None:
    client = demo.client("alice")
    response = client.post("/generations", json={"prompt": "x" * 100_000})
    assert response.status_code == 413
    assert "error" in response.json()


def test_redis_stopped_mid_request_is_503(
    demo_factory: DemoFactory, redis_factory: type[RedisServer]
) -> None:
    server = redis_factory()
    demo = demo_factory(redis_url=server.url)
    client = demo.client("alice")
    url = start_generation(client, tokens=1000, interval_ms=50)
    with connect_sse(client, "GET", url) as source:
        events = source.iter_sse()
        assert envelope(next(events))["type"] == "connected"
        assert envelope(next(events))["type"] == "token"
        server.kill()
        for name in (url, url + "/recover"):
            started = time.monotonic()
            other = demo.client()
            other.cookies = client.cookies
            response = other.get(name)
            assert response.status_code == 503, response.text
            assert response.json()["error"] == "redis_unavailable"
            assert time.monotonic() - started < 5
        response = client.post("/generations", json={"tokens": 1})
        assert response.status_code == 503
        assert response.json()["error"] == "redis_unavailable"


def test_400_idle_clients_hold_a_handful_of_redis_connections(
    demo_factory: DemoFactory, redis_factory: type[RedisServer]
) -> None:
    server = redis_factory()
    demo = demo_factory(
        redis_url=server.url,
        workers=1,
        FLASK_SSE_RESILIENCE_MAX_CONNECTIONS_PER_USER="1000",
    )
    client = demo.client("alice")
    urls = [start_generation(client, tokens=1, interval_ms=60_000) for _ in range(4)]
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    sockets = []
    try:
        for i in range(400):
            sock = socket.create_connection(("127.0.0.1", demo.port))
            request = (
                f"GET {urls[i % 4]} HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n"
                "Accept: text/event-stream\r\n\r\n"
            )
            sock.sendall(request.encode())
            sockets.append(sock)
        for sock in sockets:
            sock.settimeout(10)
            head = b""
            while b'"connected"' not in head:
                chunk = sock.recv(4096)
                assert chunk, "connection closed early"
                head += chunk
            assert head.startswith(b"HTTP/1.1 200")
        observer = server.client()

        def connections() -> int:
            keys = [KEYS.stream_connections(u.rsplit("/", 1)[1]) for u in urls]
            return sum(int(observer.zcard(key)) for key in keys)

        deadline = time.monotonic() + 15
        while connections() != 400:
            assert time.monotonic() < deadline, f"{connections()} counted, not 400"
            time.sleep(0.1)
        # Everything this worker holds, minus this test's own observer.
        held = len(observer.client_list()) - 1
        # Four in the main pool, at most two for heartbeats and the guardian.
        assert held <= 6, f"{held} Redis connections for 400 SSE clients"
    finally:
        for sock in sockets:
            sock.close()
    # Every connection's cleanup ran: the counts go back to zero.
    deadline = time.monotonic() + 15
    while connections() != 0:
        assert time.monotonic() < deadline, f"{connections()} never released"
        time.sleep(0.2)


@pytest.mark.parametrize(
    "raw_id",
    ["１２-0".encode(), "é-1".encode("latin-1"), b"9" * 101, b"-1", b"1-1\x00"],
)
def test_raw_bad_last_event_ids_over_http_are_400_json(
    demo: Demo, raw_id: bytes
) -> None:
    client = demo.client("alice")
    url = start_generation(client, tokens=2, interval_ms=0)
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    with socket.create_connection(("127.0.0.1", demo.port)) as sock:
        sock.sendall(
            f"GET {url} HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n".encode()
            + b"Last-Event-ID: " + raw_id + b"\r\nConnection: close\r\n\r\n"
        )  # fmt: skip
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), head
    if b"\x00" in raw_id:
        return  # gunicorn itself refuses a NUL in a header, before the app
    assert json.loads(body)["error"] == "invalid_last_event_id"


def test_flask_compress_on_the_demo_never_touches_streams(demo: Demo) -> None:
    """The demo runs the real Flask-Compress: its page is gzipped, its event
    streams are not, and each token arrives on its own as it is produced."""
    client = demo.client("alice")
    page = client.get("/", headers={"Accept-Encoding": "gzip"})
    assert page.headers["Content-Encoding"] == "gzip"
    url = start_generation(client, tokens=5, interval_ms=300)
    gaps = []
    with client.stream(
        "GET", url, headers={"Accept-Encoding": "gzip"}, timeout=20
    ) as response:
        assert "Content-Encoding" not in response.headers
        assert response.headers["Cache-Control"] == "no-cache, no-transform"
        last = time.monotonic()
        for line in response.iter_lines():
            if '"type":"token"' in line:
                now = time.monotonic()
                gaps.append(now - last)
                last = now
            if '"type":"completed"' in line:
                break
    assert len(gaps) == 5
    # Produced 0.3 s apart, received apart: nothing held back in a buffer.
    assert min(gaps[1:]) > 0.15
