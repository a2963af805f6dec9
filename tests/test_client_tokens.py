"""The Python clients' token hook and the asyncio client, against a scripted
HTTP server (httpx's mock transport): the client algorithm of
docs/protocol.rst, steps 1-5 and 9."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from flask_sse_resilience.client import (
    StreamUnavailable,
    acancel,
    afollow,
    afollow_key,
    follow,
)

from .loops_aside import run

URL = "http://app.test/sse/streams/s"


def frame(payload: dict[str, object], event_id: str | None = None) -> str:
    head = f"id: {event_id}\n" if event_id else ""
    return head + f"data: {json.dumps(payload)}\n\n"


CONNECTED = frame({"type": "connected", "streamId": "s", "heartbeatMs": 1000})
EXPIRING = frame({"type": "token-expiring", "expiresInMs": 20000})


def sse(body: str) -> httpx.Response:
    return httpx.Response(
        200, headers={"Content-Type": "text/event-stream"}, content=body
    )


Answer = Callable[[int, httpx.Request], httpx.Response]


def handler(
    answer: Answer, seen: list[httpx.Request]
) -> Callable[[httpx.Request], httpx.Response]:
    count = {"stream": 0}

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/recover"):
            return httpx.Response(200, json={"status": "active", "streamId": "s"})
        n = count["stream"]
        count["stream"] += 1
        return answer(n, request)

    return handle


def tokens(prefix: str = "t") -> Callable[[], str]:
    issued = {"n": 0}

    def get_token() -> str:
        issued["n"] += 1
        return f"{prefix}{issued['n']}"

    return get_token


def token_expiring_then_end(n: int, request: httpx.Request) -> httpx.Response:
    if n == 0:
        return sse(CONNECTED + frame({"type": "token", "data": 1}, "1-0") + EXPIRING
                   + frame({"type": "token", "data": "never read"}, "2-0"))  # fmt: skip
    return sse(CONNECTED + frame({"type": "completed", "data": "ok"}, "3-0"))


def test_a_token_swap_reconnects_at_once_by_the_cursor() -> None:
    seen: list[httpx.Request] = []
    client = httpx.Client(
        transport=httpx.MockTransport(handler(token_expiring_then_end, seen))
    )
    # A 100 s backoff would fail the test's timeout: the swap does not wait.
    events = list(follow(URL, client=client, get_token=tokens(), base_delay=100))
    assert [e.data for e in events] == [1, "ok"]
    streams = [r for r in seen if not r.url.path.endswith("/recover")]
    assert [r.url.params.get("token") for r in seen] == ["t1", "t1", "t2"]
    assert streams[1].headers["Last-Event-ID"] == "1-0"


def test_a_401_asks_for_one_fresh_token_then_gives_up() -> None:
    valid = {"t2"}

    def answer(n: int, request: httpx.Request) -> httpx.Response:
        if request.url.params.get("token") not in valid:
            return httpx.Response(401, json={"error": "invalid_stream_token"})
        return sse(CONNECTED + frame({"type": "completed", "data": "ok"}, "1-0"))

    seen: list[httpx.Request] = []
    client = httpx.Client(transport=httpx.MockTransport(handler(answer, seen)))
    events = list(follow(URL, client=client, get_token=tokens(), base_delay=100))
    assert [e.data for e in events] == ["ok"]  # t1 refused, t2 accepted at once
    valid.clear()
    with pytest.raises(StreamUnavailable) as refused:
        list(follow(URL, client=client, get_token=tokens(), base_delay=100))
    assert refused.value.status_code == 401
    # Without a token source, a 401 ends it at once.
    with pytest.raises(StreamUnavailable):
        list(follow(URL, client=client, base_delay=100))


async def collect(iterator: Any) -> list[Any]:
    return [event async for event in iterator]


def async_client(answer: Answer, seen: list[httpx.Request]) -> httpx.AsyncClient:
    handle = handler(answer, seen)

    async def async_handle(request: httpx.Request) -> httpx.Response:
        return handle(request)

    return httpx.AsyncClient(transport=httpx.MockTransport(async_handle))


def test_the_async_client_resumes_by_id_and_restarts_its_count() -> None:
    positions: list[str | None] = []

    def answer(n: int, request: httpx.Request) -> httpx.Response:
        positions.append(request.headers.get("Last-Event-ID"))
        if n < 5:
            return sse(CONNECTED + frame({"type": "token", "data": n}, f"{n + 1}-0"))
        return sse(CONNECTED + frame({"type": "completed", "data": "ok"}, "99-0"))

    async def main() -> list[Any]:
        async with async_client(answer, []) as client:
            return await collect(
                afollow(URL, client=client, max_attempts=2, base_delay=0.001)
            )

    events = run(main())
    assert [e.data for e in events] == [*range(5), "ok"]
    assert positions == [None, *(f"{n}-0" for n in range(1, 6))]


def test_the_async_client_swaps_tokens_from_a_coroutine_and_gives_up_when_refused() -> (
    None
):
    issued = {"n": 0}

    async def get_token() -> str:
        issued["n"] += 1
        return f"t{issued['n']}"

    async def main() -> list[Any]:
        seen: list[httpx.Request] = []
        async with async_client(token_expiring_then_end, seen) as client:
            events = await collect(
                afollow(URL, client=client, get_token=get_token, base_delay=100)
            )
        assert seen[-1].url.params["token"] == "t2"
        return events

    assert [e.data for e in run(main())] == [1, "ok"]

    def never(n: int, request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"error": "redis_unavailable"})

    async def gives_up() -> None:
        async with async_client(never, []) as client:
            await collect(afollow(URL, client=client, max_attempts=2, base_delay=0.001))

    with pytest.raises(StreamUnavailable, match="gave up after 2 attempts"):
        run(gives_up())


def test_async_cancel_and_follow_key() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/streams/s/cancel"):
            assert json.loads(request.content) == {"reason": "enough"}
            return httpx.Response(202, json={"status": "cancelling", "streamId": "s"})
        if path.endswith("/keys/none"):
            return httpx.Response(204)
        if path.endswith("/keys/chat"):
            return httpx.Response(200, json={
                "status": "completed", "streamId": "s", "eventId": "9-0",
                "terminalEventType": "completed", "terminalEventData": "done",
            })  # fmt: skip
        return httpx.Response(404, json={"error": "stream_not_found"})

    async def main() -> None:
        async def async_handle(request: httpx.Request) -> httpx.Response:
            return handle(request)

        transport = httpx.MockTransport(async_handle)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://app.test"
        ) as c:
            answer = await acancel("/sse/streams/s", client=c, reason="enough")
            assert answer["status"] == "cancelling"
            assert await collect(afollow_key("none", client=c)) == []
            ended = await collect(afollow_key("chat", client=c))
            assert [(e.type, e.data, e.id) for e in ended] == [
                ("completed", "done", "9-0")
            ]
            with pytest.raises(StreamUnavailable):
                await acancel("/sse/streams/other", client=c)

    run(main())
