"""Helpers to read stream responses from Flask's test client."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from flask.testing import FlaskClient
from httpx_sse import ServerSentEvent
from werkzeug.test import TestResponse

from .sse import envelope, parse


def login(client: FlaskClient, user: str) -> None:
    assert client.post("/test-login", json={"user": user}).status_code == 200


def open_stream(
    client: FlaskClient, url: str, last_event_id: str | None = None
) -> TestResponse:
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    return client.get(url, headers=headers, buffered=False)


def chunks(response: TestResponse, log: list[bytes]) -> Iterator[bytes]:
    for chunk in response.response:
        log.append(chunk)
        yield chunk


def read(
    response: TestResponse, *, limit: int = 10_000, seconds: float = 10
) -> tuple[list[ServerSentEvent], bytes]:
    """Read up to ``limit`` events (or to the end); return them and the raw bytes."""
    raw: list[bytes] = []
    events: list[ServerSentEvent] = []
    deadline = time.monotonic() + seconds
    for event in parse(chunks(response, raw)):
        if event.event == "heartbeat":
            continue  # keep-alives; tests look at comments in the raw bytes
        events.append(event)
        if len(events) >= limit:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"stream still open after {seconds}s: {events}")
    return events, b"".join(raw)


def types(events: list[ServerSentEvent]) -> list[str]:
    return [envelope(e)["type"] for e in events]


def data(events: list[ServerSentEvent]) -> list[Any]:
    return [envelope(e).get("data") for e in events]
