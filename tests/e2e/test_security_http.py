"""The security rules over real HTTP: the demo under gunicorn -k gevent."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from harness.demo_server import Demo, DemoFactory

pytestmark = pytest.mark.e2e


def generation(demo: Demo, user: str = "alice") -> tuple[dict[str, Any], Any]:
    client = demo.client(user)
    response = client.post("/generations", json={"tokens": 1, "interval_ms": 60_000})
    assert response.status_code == 201
    return response.json(), client


def open_raw(demo: Demo, path: str, cookie: str = "") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", demo.port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n".encode())
    return sock


def head_of(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_connection_limit_is_shared_by_workers_and_answers_429(
    demo_factory: DemoFactory,
) -> None:
    demo = demo_factory(workers=2, FLASK_SSE_RESILIENCE_MAX_CONNECTIONS_PER_USER="3")
    body, client = generation(demo)
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    held = [open_raw(demo, body["streamUrl"], cookie) for _ in range(3)]
    try:
        for sock in held:
            assert head_of(sock).startswith(b"HTTP/1.1 200")
        refused = client.get(body["streamUrl"])
        assert refused.status_code == 429
        assert refused.json()["error"] == "too_many_connections"
        assert int(refused.headers["Retry-After"]) >= 1
        bob_body, bob = generation(demo, "bob")  # bob's budget is his own
        with bob.stream("GET", bob_body["streamUrl"]) as own:
            assert own.status_code == 200
    finally:
        held[0].close()
    # One connection closed: one more fits (released at once, not at expiry).
    for _ in range(50):
        with client.stream("GET", body["streamUrl"]) as again:
            if again.status_code == 200:
                break
    else:
        pytest.fail("a closed connection's lease was never released")
    for sock in held[1:]:
        sock.close()


def test_a_stream_token_works_without_the_cookie_and_only_for_its_stream(
    demo: Demo,
) -> None:
    body, _ = generation(demo)
    other, _ = generation(demo)
    anonymous = demo.client()
    recover = anonymous.get(f"{body['streamUrl']}/recover?token={body['token']}")
    assert recover.status_code == 200 and recover.json()["status"] == "active"
    with anonymous.stream("GET", f"{body['streamUrl']}?token={body['token']}") as ok:
        assert ok.status_code == 200
        assert b"connected" in next(ok.iter_bytes())
    wrong = anonymous.get(f"{other['streamUrl']}?token={body['token']}")
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_stream_token"
    assert anonymous.get(body["streamUrl"]).status_code == 401


def test_cors_only_for_listed_origins(demo_factory: DemoFactory) -> None:
    demo = demo_factory(FLASK_SSE_RESILIENCE_CORS_ORIGINS="https://app.example")
    body, client = generation(demo)
    url = body["streamUrl"] + "/recover"
    listed = client.get(url, headers={"Origin": "https://app.example"})
    assert listed.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert listed.headers["Access-Control-Allow-Credentials"] == "true"
    other = client.get(url, headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
