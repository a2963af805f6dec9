"""The ASGI peer: sse-starlette (PyPI ``sse-starlette``) on uvicorn, written
the way its users write it, with its public API only.

One shared ``redis.asyncio`` pub/sub connection per process, opened by the
app's lifespan, copies each message into a bounded queue per client; the
view returns an ``EventSourceResponse`` over that queue (sse-starlette frames
each message as ``data:`` and sends its own keep-alive pings). Like the raw
baseline: no registry, no log, no ownership, no replay.

Publishers PUBLISH the event's data (a JSON text) to the ``bench`` channel;
a client of ``/s/<name>`` gets what is published to ``bench:<name>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

import redis.asyncio as redis
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

CHANNEL = "bench"
_everyone: set[asyncio.Queue[str]] = set()
_streams: dict[str, set[asyncio.Queue[str]]] = {}


async def _listen(pubsub: redis.client.PubSub) -> None:
    async for message in pubsub.listen():
        if message["type"] == "pmessage":
            queues = _streams.get(message["channel"], set())
        elif message["type"] == "message":
            queues = _everyone
        else:
            continue
        for queue in list(queues):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(message["data"])  # a slow client loses it


@contextlib.asynccontextmanager
async def lifespan(_app: Starlette) -> AsyncIterator[None]:
    client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"], decode_responses=True)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(CHANNEL)
    await pubsub.psubscribe(CHANNEL + ":*")
    listener = asyncio.create_task(_listen(pubsub))
    yield
    listener.cancel()
    await pubsub.aclose()
    await client.aclose()


def _follow(queues: set[asyncio.Queue[str]]) -> EventSourceResponse:
    queue: asyncio.Queue[str] = asyncio.Queue(maxsize=10_000)
    queues.add(queue)

    async def events() -> AsyncIterator[dict[str, str]]:
        try:
            while True:
                yield {"data": await queue.get()}
        finally:
            queues.discard(queue)

    return EventSourceResponse(events(), ping=15)


async def everyone(_request: Request) -> EventSourceResponse:
    return _follow(_everyone)


async def one_stream(request: Request) -> EventSourceResponse:
    channel = f"{CHANNEL}:{request.path_params['name']}"
    return _follow(_streams.setdefault(channel, set()))


async def ready(_request: Request) -> Response:
    return Response(status_code=204)  # the bench's start-up probe


app = Starlette(
    routes=[
        Route("/", everyone),
        Route("/s/{name}", one_stream),
        Route("/ready", ready),
    ],
    lifespan=lifespan,
)
