"""The best case a gevent worker can do: pre-encoded SSE frames, fed by ONE
shared Redis pub/sub connection, copied into a queue per client. No registry,
no log, no ownership, no replay.

Publishers PUBLISH complete SSE frames to the ``bench`` channel; for many
streams, a client of ``/s/<name>`` gets the frames published to
``bench:<name>`` (one pattern subscription on the same connection).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import gevent
import redis
from gevent.queue import Empty, Full, Queue

CHANNEL = "bench"
KEEPALIVE = b": heartbeat\n\n"
_queues: set[Queue] = set()
_streams: dict[bytes, set[Queue]] = {}
_listener: Any = None


def _listen() -> None:
    client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(CHANNEL)
    pubsub.psubscribe(CHANNEL + ":*")
    for message in pubsub.listen():
        frame = message["data"]
        if message["type"] == "pmessage":
            queues = _streams.get(message["channel"], ())
        else:
            queues = _queues
        for queue in list(queues):
            try:
                queue.put_nowait(frame)
            except Full:
                pass  # this client is too slow: the event is lost for it


def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
    global _listener
    if environ.get("PATH_INFO") == "/ready":  # the bench's start-up probe
        start_response("204 No Content", [])
        return iter(())
    if _listener is None:
        _listener = gevent.spawn(_listen)
    queue: Queue = Queue(maxsize=10_000)
    path = environ.get("PATH_INFO", "/")
    if path.startswith("/s/"):
        queues = _streams.setdefault(f"{CHANNEL}:{path[3:]}".encode(), set())
    else:
        queues = _queues
    queues.add(queue)
    start_response(
        "200 OK", [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")]
    )

    def frames() -> Iterator[bytes]:
        try:
            yield b": connected\n\n"
            while True:
                try:
                    yield queue.get(timeout=15)
                except Empty:
                    yield KEEPALIVE
        finally:
            queues.discard(queue)

    return frames()
