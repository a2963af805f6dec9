"""Hypothesis-generated requests against the blueprint and the demo: whatever
arrives, the answer is never a 5xx (Redis up), and errors are JSON."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from examples.demo.app import create_app
from harness.redis_server import RedisServer

header_text = st.text(
    st.characters(max_codepoint=255, blacklist_characters="\r\n\x00"), max_size=120
)
segment = st.one_of(
    st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="/?#"),
        max_size=140,
    ),
    st.sampled_from(["", ".", "..", "%2F", "%00", "a" * 200, "{x}", "*"]),
    st.just("REAL"),  # replaced by a stream that exists, owned by alice
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=10,
)
generation_bodies = st.fixed_dictionaries(
    {},
    optional={
        "prompt": json_values,
        "tokens": st.one_of(st.integers(-5, 20_000), json_values),
        "interval_ms": st.one_of(st.integers(-5, 70_000), json_values),
        "fail_after": st.one_of(st.integers(-5, 30), json_values),
    },
)


@pytest.fixture
def demo_app(redis_server: RedisServer, r: object) -> Iterator[Flask]:
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "fuzz",
            "SSE_RESILIENCE_REDIS_URL": redis_server.url,
            "SSE_RESILIENCE_MAX_STREAMS_PER_USER": 3,
            "SSE_RESILIENCE_HEARTBEAT_INTERVAL": 0.2,
            "SSE_RESILIENCE_STALE_THRESHOLD": 1,
        }
    )
    sse = app.extensions["sse_resilience"]
    with app.app_context():
        from examples.demo.app import sse as demo_sse

        app.config["REAL_STREAM"] = demo_sse.open_stream("alice")
    yield app
    sse.close()


def check(response: Any) -> None:
    assert response.status_code < 500, response.data[:300]
    if response.status_code >= 400 and response.status_code != 405:
        assert response.is_json, response.data[:300]
    response.close()


FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@FUZZ
@given(
    method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"]),
    stream_id=segment,
    suffix=st.sampled_from(["", "/recover", "/recover/x", "/"]),
    last_event_id=st.one_of(st.none(), header_text),
    token=st.one_of(st.none(), header_text),
    origin=st.one_of(st.none(), header_text),
    signed_in=st.booleans(),
)
def test_stream_endpoints_never_fail(
    demo_app: Flask,
    method: str,
    stream_id: str,
    suffix: str,
    last_event_id: str | None,
    token: str | None,
    origin: str | None,
    signed_in: bool,
) -> None:
    client = demo_app.test_client()
    if signed_in:
        client.post("/login", json={"user": "alice"})
    headers = {}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    if origin is not None:
        headers["Origin"] = origin
    query = {"token": token} if token is not None else {}
    from urllib.parse import quote

    if stream_id == "REAL":
        stream_id = demo_app.config["REAL_STREAM"]
    path = f"/sse/streams/{quote(stream_id, safe='')}{suffix}"
    check(client.open(path, method=method, headers=headers, query_string=query,
                      buffered=False))  # fmt: skip


@FUZZ
@given(
    path=st.sampled_from(["/generations", "/login", "/logout"]),
    body=st.one_of(
        generation_bodies.map(lambda b: ("json", b)),
        json_values.map(lambda b: ("json", b)),
        st.binary(max_size=300).map(lambda b: ("raw", b)),
        st.dictionaries(st.text(max_size=8), json_values).map(lambda b: ("json", b)),
    ),
    content_type=st.sampled_from(
        ["application/json", "text/plain", "application/x-www-form-urlencoded", ""]
    ),
)
def test_demo_endpoints_never_fail(
    demo_app: Flask, path: str, body: tuple[str, Any], content_type: str
) -> None:
    client = demo_app.test_client()
    client.post("/login", json={"user": "fuzzer"})
    kind, value = body
    if kind == "json":
        response = client.post(path, json=value)
    else:
        headers = {"Content-Type": content_type} if content_type else {}
        response = client.post(path, data=value, headers=headers)
    check(response)


def test_an_oversized_body_is_413_json(demo_app: Flask) -> None:
    client = demo_app.test_client()
    client.post("/login", json={"user": "alice"})
    response = client.post("/generations", data=b"{" * 100_000,
                           headers={"Content-Type": "application/json"})  # fmt: skip
    assert response.status_code == 413 and response.is_json
