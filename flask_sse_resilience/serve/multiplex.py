"""Several streams on one SSE response (``GET <prefix>/multi``).

A browser holds at most six HTTP/1.1 connections per origin, so a page (or,
with tab sharing, a browser) following many streams follows them on one
response. Each stream is served by its own
:class:`~flask_sse_resilience.serve.eventstream.EventStream` (the same replay, live
follow and exactly-once checks as a single stream), run by a pump (a greenlet
under gevent) that hands its frames to this response in order.

Every event frame carries the **combined cursor** as its SSE ``id``: the
position in each stream, in the order of the ``streams`` parameter, joined by
commas (empty for a stream with nothing delivered yet). A client reconnecting
with it (``Last-Event-ID``, or the ``lastEventId`` parameter) resumes every
stream exactly where it was. The cursor of a frame is computed and the frame
queued under one lock, so frames leave in cursor order: a client never holds a
cursor that claims an event it has not received.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from .. import wire
from ..models import Event
from . import disconnect
from .eventstream import RECONNECT_MS, WRITE_BYTES, EventStream

log = logging.getLogger(__name__)

#: Separates the positions of a combined cursor.
SEPARATOR = ","

#: Frames the pumps may queue ahead of the client (back-pressure: a stream
#: replaying a long log waits for the socket, as a single stream does).
AHEAD = 256


def parse_cursor(value: str | None, count: int) -> list[str | None] | None:
    """The positions of a combined cursor for ``count`` streams (None for a
    stream without one), all None without a cursor; None if it has the wrong
    number of positions."""
    if value is None or value == "":
        return [None] * count
    positions = value.split(SEPARATOR)
    if len(positions) != count:
        return None
    return [p or None for p in positions]


def format_cursor(positions: list[str | None]) -> str:
    """The combined cursor of per-stream positions (see :func:`parse_cursor`)."""
    return SEPARATOR.join(p or "" for p in positions)


def error_frame(stream_id: str, error: Any) -> bytes:
    """A per-stream refusal (no ``id:``): ``{"type": "error", "stream", "data":
    {"error", "message", "status"}}``; the other streams go on."""
    data = {
        "error": error.error_code,
        "message": error.description,
        "status": error.code,
    }
    return wire.encode(wire.dumps({"type": "error", "stream": stream_id, "data": data}))


class _Part:
    """One stream of a multiplexed response."""

    __slots__ = ("ended", "index", "stream")

    def __init__(self, index: int, stream: EventStream) -> None:
        self.index = index
        self.stream = stream
        #: Set once its terminal event is queued.
        self.ended = False


#: Markers on the response's queue, besides frames.
_DONE = "done"
_GONE = "gone"


class MultiStream:
    """Serves several streams to one client; iterate :meth:`frames`.

    ``streams`` are the followed streams' :class:`EventStream` objects by
    their place in the request (None for one refused or already complete for
    this client); ``positions`` the combined cursor the client sent.
    """

    def __init__(
        self,
        stream_ids: list[str],
        streams: list[EventStream | None],
        positions: list[str | None],
        *,
        errors: list[bytes],
        keepalive: float,
        max_age: float = 0.0,
        token_expires: float | None = None,
        refresh_lead: float = 30.0,
        client_socket: Any = None,
    ) -> None:
        self.stream_ids = stream_ids
        self.positions = list(positions)
        self.errors = errors
        self.keepalive = keepalive
        self.max_age = max_age
        self.token_expires = token_expires
        self.refresh_lead = refresh_lead
        self.client_socket = client_socket
        self._queue: queue.Queue[Any] = queue.Queue()
        self._lock = threading.Lock()
        self._room = threading.Semaphore(AHEAD)
        self._closed = False
        self.parts = [
            _Part(index, stream)
            for index, stream in enumerate(streams)
            if stream is not None
        ]
        for part in self.parts:
            part.stream.encode_event = self._encoder(part)
            part.stream.hello = False

    def _encoder(self, part: _Part) -> Callable[[Event], bytes]:
        stream_id = json.dumps(self.stream_ids[part.index])

        def encode(event: Event) -> bytes:
            # Envelope: the single stream's, plus the stream and its own id.
            data = (
                '{"type":' + json.dumps(event.type) + ',"stream":' + stream_id
                + ',"eventId":' + json.dumps(event.id) + ',"data":' + event.data_json
                + "}"
            )  # fmt: skip
            self._room.acquire()  # given back as the frame is written
            with self._lock:
                if self._closed:
                    return b""
                if event.id is not None:
                    self.positions[part.index] = event.id
                frame = wire.encode(data, event_id=format_cursor(self.positions))
                if event.terminal:
                    part.ended = True
                self._queue.put(frame)
            return b""  # queued already, in cursor order

        return encode

    def hello(self) -> bytes:
        """The first frame: the streams and the heartbeat, in milliseconds."""
        hello = {
            "type": "connected",
            "streams": self.stream_ids,
            "heartbeatMs": int(self.keepalive * 1000),
        }
        return wire.encode(wire.dumps(hello))

    def frames(self) -> Iterator[bytes]:
        """Yield the response body; ends once every stream ended (or one
        could not go on: the client then resumes by its cursor)."""
        yield self.hello() + b"".join(self.errors)
        if not self.parts:
            return
        watch = disconnect.watch(
            self.client_socket,
            lambda: self._queue.put(_GONE),
            timeout_ms=int(self.keepalive * 500),
        )
        for part in self.parts:
            threading.Thread(target=self._pump, args=(part,), daemon=True).start()
        try:
            yield from self._serve()
        finally:
            watch.cancel()
            with self._lock:
                self._closed = True
            for part in self.parts:
                part.stream.stop()
            self._room.release(AHEAD)  # wake every pump waiting for room

    def _serve(self) -> Iterator[bytes]:
        now = time.monotonic()
        rotate_at = now + self.max_age if self.max_age > 0 else None
        notify_at = wire.token_notice_at(self.token_expires, self.refresh_lead)
        live = len(self.parts)
        while live:
            deadlines = [d for d in (rotate_at, notify_at) if d is not None]
            wait = min([self.keepalive, *(d - time.monotonic() for d in deadlines)])
            if rotate_at is not None and wait <= 0 and time.monotonic() >= rotate_at:
                yield wire.encode_retry(RECONNECT_MS)
                return
            if notify_at is not None and time.monotonic() >= notify_at:
                assert self.token_expires is not None
                yield wire.token_expiring_frame(self.token_expires)
                notify_at = None
                continue
            try:
                item = self._queue.get(timeout=max(wait, 0.0))
            except queue.Empty:
                yield wire.KEEPALIVE
                continue
            frames: list[bytes] = []
            size = 0
            while True:
                if isinstance(item, bytes):
                    self._room.release()
                    frames.append(item)
                    size += len(item)
                elif item == _GONE:
                    return
                else:  # a part finished: for good, or it could not go on
                    live -= 1
                    if not self.parts[item[1]].ended:
                        frames.append(wire.encode_retry(RECONNECT_MS))
                        yield b"".join(frames)
                        return
                if size >= WRITE_BYTES:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if frames:
                yield b"".join(frames)

    def _pump(self, part: _Part) -> None:
        """Run one stream's response, its frames queued by the encoder; a
        ``retry:`` hint (its worker stops, or Redis went away) ends it."""
        position = self.parts.index(part)
        try:
            for chunk in part.stream.frames():
                if chunk.startswith(b"retry:"):
                    break
        except Exception:  # noqa: BLE001 - the client resumes by its cursor
            log.exception("stream %s of a multiplexed response", part.stream.stream_id)
        finally:
            self._queue.put((_DONE, position))
