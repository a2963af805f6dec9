"""The Python client's side of the client algorithm (docs/protocol.rst),
against a scripted HTTP server: when it recovers, when its attempt count
restarts, when it stops."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from flask_sse_resilience.client import StreamUnavailable, afollow, follow
from harness.redis_server import free_port

from .loops_aside import run

URL = "http://app.test/sse/streams/s"


def frame(payload: dict[str, object], event_id: str | None = None) -> str:
    head = f"id: {event_id}\n" if event_id else ""
    return head + f"data: {json.dumps(payload)}\n\n"


CONNECTED = frame({"type": "connected", "streamId": "s", "heartbeatMs": 1000})


def server(answer: Callable[[int, httpx.Request], httpx.Response]) -> httpx.Client:
    """A client whose every request ``answer(n, request)`` answers (``n``
    counts stream requests from 0)."""
    seen = {"stream": 0}

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/recover"):
            return httpx.Response(200, json={"status": "active", "streamId": "s"})
        n = seen["stream"]
        seen["stream"] += 1
        return answer(n, request)

    return httpx.Client(transport=httpx.MockTransport(handle))


def sse(body: str) -> httpx.Response:
    return httpx.Response(
        200, headers={"Content-Type": "text/event-stream"}, content=body
    )


def test_the_attempt_count_restarts_when_a_connection_is_accepted() -> None:
    """Eight accepted connections that each end early, with a budget of two
    attempts: every ``connected`` frame restarts the count, so it never runs
    out, and every event arrives once, resumed by Last-Event-ID."""
    positions: list[str | None] = []

    def answer(n: int, request: httpx.Request) -> httpx.Response:
        positions.append(request.headers.get("Last-Event-ID"))
        if n < 8:
            return sse(CONNECTED + frame({"type": "token", "data": n}, f"{n + 1}-0"))
        return sse(CONNECTED + frame({"type": "completed", "data": "ok"}, "99-0"))

    client = server(answer)
    events = list(follow(URL, client=client, max_attempts=2, base_delay=0.001))
    assert [e.data for e in events] == [*range(8), "ok"]
    assert positions == [None, *(f"{n}-0" for n in range(1, 9))]


def test_refused_connections_count_until_the_budget_is_spent() -> None:
    def answer(n: int, request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"error": "redis_unavailable"})

    client = server(answer)
    with pytest.raises(StreamUnavailable) as gave_up:
        list(follow(URL, client=client, max_attempts=3, base_delay=0.001))
    # The last cause, with the protocol's error code from the JSON body.
    assert str(gave_up.value) == (
        f"{URL}: gave up after 3 attempts; the last one: HTTP 503 redis_unavailable"
    )
    assert gave_up.value.status_code == 503
    assert isinstance(gave_up.value.__cause__, httpx.HTTPStatusError)


@pytest.mark.parametrize("flavour", ["sync", "asyncio"])
def test_an_unreachable_server_gives_up_naming_the_cause(flavour: str) -> None:
    """Nothing listens on the port: both clients say what the last attempt
    met, in the message and as the cause."""
    url = f"http://127.0.0.1:{free_port()}/sse/streams/abc"
    with pytest.raises(StreamUnavailable) as gave_up:
        if flavour == "sync":
            list(follow(url, max_attempts=2, base_delay=0.001))
        else:

            async def main() -> None:
                async for _ in afollow(url, max_attempts=2, base_delay=0.001):
                    pass

            run(main())
    error = gave_up.value
    # (httpx's asyncio transport words it differently; the reason is kept.)
    said = {
        "sync": "ConnectError: [Errno 111] Connection refused",
        "asyncio": "ConnectError: All connection attempts failed "
        "([Errno 111] Connection refused)",
    }[flavour]
    assert str(error) == f"{url}: gave up after 2 attempts; the last one: {said}"
    assert isinstance(error.__cause__, httpx.ConnectError)
    assert error.last_error is error.__cause__ and error.status_code is None


def test_a_client_with_a_position_never_takes_the_recover_shortcut() -> None:
    paths: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        if request.url.path.endswith("/recover"):
            ended = {
                "status": "completed",
                "streamId": "s",
                "eventId": "9-0",
                "terminalEventType": "completed",
                "terminalEventData": 1,
            }
            return httpx.Response(200, json=ended)
        return sse(
            CONNECTED
            + frame({"type": "token", "data": 5}, "5-0")
            + frame({"type": "completed", "data": 1}, "9-0")
        )

    client = httpx.Client(transport=httpx.MockTransport(handle))
    resumed = list(follow(URL, client=client, last_event_id="4-0"))
    assert [e.data for e in resumed] == [5, 1]  # the rest, not only the end
    assert paths == ["/sse/streams/s"]
    fresh = list(follow(URL, client=client))
    assert [(e.type, e.id) for e in fresh] == [("completed", "9-0")]
    assert paths[1:] == ["/sse/streams/s/recover"]
