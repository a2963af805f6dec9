"""Several streams on one SSE response (``GET <prefix>/multi``).

A browser holds at most six HTTP/1.1 connections per origin, so a page (or,
with tab sharing, a browser) following many streams follows them on one
response. Each stream is served by its own
:class:`~flask_sse_resilience.serve.eventstream.EventStream` (the same replay, live
follow and exactly-once checks as a single stream), run by a pump (a greenlet
under gevent); its :class:`~flask_sse_resilience.serve.eventstream.FrameSink` is
the response's :class:`_Part` for it, which frames each event and queues it on
this response, in order. A stream's keep-alives, hello and ``retry:`` hint are
the response's own business: a part drops them, and a stream that ends
without its terminal event (its worker stops, Redis went away) ends the whole
response with ``retry:``.

Every event frame carries the **combined cursor** as its SSE ``id`` (see
:func:`~flask_sse_resilience.wire.format_cursor`): the position in each
stream, in the order of the ``streams`` parameter, joined by commas (empty for
a stream with nothing delivered yet). A client reconnecting with it
(``Last-Event-ID``, or the ``lastEventId`` parameter) resumes every stream
exactly where it was. The cursor of a frame is computed and the frame queued
under one lock, so frames leave in cursor order: a client never holds a
cursor that claims an event it has not received.

Who owns what: the web route admits the connection (one lease for the whole
response, see :class:`~flask_sse_resilience.serve.admission.MultiConnection`)
and decides per stream; a :class:`MultiStream` owns its parts, their pumps and
its queue, and stops every stream when its body closes.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from .. import wire
from ..errors import HTTPError
from ..models import Event
from . import disconnect
from .eventstream import WRITE_BYTES, EventStream, FrameSink

log = logging.getLogger(__name__)

#: Frames the pumps may queue ahead of the client (back-pressure: a stream
#: replaying a long log waits for the socket, as a single stream does).
AHEAD = 256

#: Builds the :class:`EventStream` of one stream of the response, given the
#: sink it must send to.
StreamBuilder = Callable[[FrameSink], EventStream]


class _Part:
    """One stream of a multiplexed response, and the :class:`FrameSink` of
    its :class:`EventStream`: its events go on the response's queue, framed
    with the combined cursor; the rest is the response's business."""

    __slots__ = ("ended", "index", "response", "stream", "stream_id")

    def __init__(self, response: MultiStream, index: int, build: StreamBuilder):
        self.response = response
        self.index = index
        self.stream_id = response.stream_ids[index]
        #: Set once its terminal event is queued.
        self.ended = False
        self.stream = build(self)

    def hello(self, stream_id: str, keepalive: float) -> None:
        """Nothing: the response's own hello names every stream."""

    def event(self, event: Event) -> None:
        """Queue the event's frame on the response, in cursor order."""
        self.response._queue_event(self, event)

    def keepalive(self) -> None:
        """Nothing: the response keeps itself alive."""

    def token_expiring(self, expires_at: float) -> None:
        """Nothing: the response tells of its earliest token itself."""

    def reconnect(self) -> None:
        """Nothing: the stream ends next, without its terminal event, and the
        response then ends with its own ``retry:``."""

    def take(self, at_least: int = 0) -> None:
        """Nothing held: every frame went on the response's queue."""
        return None


#: Markers on the response's queue, besides frames.
_DONE = "done"
_GONE = "gone"


class MultiStream:
    """Serves several streams to one client; iterate :meth:`frames`.

    ``stream_ids`` are the request's streams in order, ``positions`` the
    combined cursor the client sent (one position per stream, or None);
    ``refusals`` the streams refused (id and error, each sent as an ``error``
    event after the hello); ``streams`` builds, by place in the request, the
    :class:`EventStream` of each stream served (the others are refused, or
    already complete for this client).
    """

    def __init__(
        self,
        stream_ids: list[str],
        positions: list[str | None],
        *,
        refusals: list[tuple[str, HTTPError]],
        streams: dict[int, StreamBuilder],
        keepalive: float,
        max_age: float = 0.0,
        token_expires: float | None = None,
        refresh_lead: float = 30.0,
        client_socket: Any = None,
    ) -> None:
        self.stream_ids = stream_ids
        self.positions = list(positions)
        self.refusals = refusals
        self.keepalive = keepalive
        self.max_age = max_age
        self.token_expires = token_expires
        self.refresh_lead = refresh_lead
        self.client_socket = client_socket
        self._queue: queue.Queue[Any] = queue.Queue()
        self._lock = threading.Lock()
        self._room = threading.Semaphore(AHEAD)
        self._closed = False
        self.parts = [_Part(self, index, build) for index, build in streams.items()]

    def _queue_event(self, part: _Part, event: Event) -> None:
        """Frame ``event`` of ``part`` with the cursor that counts it and queue
        it, both under the lock; wait for room first (back-pressure)."""
        self._room.acquire()  # given back as the frame is written
        with self._lock:
            if self._closed:
                return
            if event.id is not None:
                self.positions[part.index] = event.id
            frame = wire.multiplexed_frame(
                event.type, part.stream_id, event.id, event.data_json, self.positions
            )
            if event.terminal:
                part.ended = True
            self._queue.put(frame)

    def hello(self) -> bytes:
        """The first frames: the streams and the heartbeat, then an ``error``
        event per refused stream."""
        errors = [
            wire.stream_error_frame(
                stream_id, error.error_code, error.description, error.code
            )
            for stream_id, error in self.refusals
        ]
        hello = wire.multiplexed_hello(self.stream_ids, self.keepalive)
        return hello + b"".join(errors)

    def frames(self) -> Iterator[bytes]:
        """Yield the response body; ends once every stream ended (or one
        could not go on: the client then resumes by its cursor)."""
        yield self.hello()
        if not self.parts:
            return
        hangup = disconnect.listen_for_hangup(
            self.client_socket,
            lambda: self._queue.put(_GONE),
            timeout_ms=int(self.keepalive * 500),
        )
        for part in self.parts:
            threading.Thread(target=self._pump, args=(part,), daemon=True).start()
        try:
            yield from self._serve()
        finally:
            hangup.cancel()
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
                yield wire.RECONNECT
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
                        frames.append(wire.RECONNECT)
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
        """Run one stream to its end (its terminal event, or a stop: its
        worker stops, Redis went away, the client left); every frame of it
        goes on the queue through the part, its sink."""
        position = self.parts.index(part)
        try:
            for _ in part.stream.frames():
                pass  # never runs: a part holds nothing for a body of its own
        except Exception:  # noqa: BLE001 - the client resumes by its cursor
            log.exception("stream %s of a multiplexed response", part.stream_id)
        finally:
            self._queue.put((_DONE, position))
