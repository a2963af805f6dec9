"""One SSE connection: replay from the log, then follow live events.

The generator built here is what a stream response iterates. It receives only
plain values (no request proxies), so it runs fine after the view returned.

Delivery is exactly once. Every event carries its stream's sequence number:
a live event whose number is not the next one expected is either a duplicate
(skipped) or reveals a gap, which is filled from the log by the last delivered
id. If the log no longer holds what the client needs (it is capped), the client
gets an explicit ``reset`` event and then the log from its start, never a
silent gap.

An :class:`EventStream` decides *what* to send and when; its
:class:`FrameSink` decides how it is framed and where it goes. A stream served
on its own response uses :class:`ResponseFrames` (every frame built by
:mod:`~flask_sse_resilience.wire`, held for the response's next write, which
:meth:`EventStream.frames` yields); each stream of a multiplexed response has
the response's own sink (see :mod:`~flask_sse_resilience.serve.multiplex`),
which frames its events with the combined cursor and queues them on that
response.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any, Protocol

from .. import wire
from ..ids import parse_event_id
from ..models import Event, StartFrom, StreamState
from ..redisio import outages
from ..redisio.commands import run_pipeline
from ..redisio.failures import UNAVAILABLE
from ..store.eventlog import EventLog
from ..store.logentries import parse_snapshot
from ..store.registry import StreamRegistry
from . import disconnect
from .admission import Connection
from .broker import Broker
from .timeline import Notice

log = logging.getLogger(__name__)


#: Log entries read per round trip when a client catches up.
PAGE = 500

#: Frames joined into one write when a client is behind, in bytes at most
#: (plus one frame).
WRITE_BYTES = 64 * 1024

#: Sent when the log lost events a client lacks, before what is left of them.
TRIMMED = Event.unlogged(wire.LOG_TRIMMED)


def _position(event_id: str | None) -> tuple[int, int]:
    return parse_event_id(event_id or "") or (0, 0)


class FrameSink(Protocol):
    """Where an :class:`EventStream` sends what it serves, and how that is
    framed. The stream tells its sink each thing in order; its own body
    (:meth:`EventStream.frames`) is what :meth:`take` hands back."""

    def hello(self, stream_id: str, keepalive: float) -> None:
        """The response starts (``keepalive``: the heartbeat interval, s)."""

    def event(self, event: Event) -> None:
        """An event for the client, exactly once and in order: from the log,
        live, a snapshot, a ``reset``, or the end."""

    def keepalive(self) -> None:
        """Nothing came for a heartbeat interval."""

    def token_expiring(self, expires_at: float) -> None:
        """The client's stream token expires at ``expires_at`` (epoch s)."""

    def reconnect(self) -> None:
        """The response ends before the stream did: the client should
        reconnect soon and resume by its cursor."""

    def take(self, at_least: int = 0) -> bytes | None:
        """The frames held for the stream's own body, as one write, if they
        come to ``at_least`` bytes (and to any at all); else None, keeping
        them. A sink that delivers elsewhere holds none."""


class ResponseFrames:
    """The :class:`FrameSink` of a stream served on its own response: each
    frame built by :mod:`~flask_sse_resilience.wire` and held for the
    response's next write."""

    __slots__ = ("_frames", "_size")

    def __init__(self) -> None:
        self._frames: list[bytes] = []
        self._size = 0

    def _hold(self, frame: bytes) -> None:
        self._frames.append(frame)
        self._size += len(frame)

    def hello(self, stream_id: str, keepalive: float) -> None:
        """Hold the ``connected`` frame."""
        self._hold(wire.connected_frame(stream_id, keepalive))

    def event(self, event: Event) -> None:
        """Hold the event's frame (built once per event, shared by every
        client of this process)."""
        self._hold(event.encode())

    def keepalive(self) -> None:
        """Hold the keep-alive frame."""
        self._hold(wire.KEEPALIVE)

    def token_expiring(self, expires_at: float) -> None:
        """Hold the ``token-expiring`` frame."""
        self._hold(wire.token_expiring_frame(expires_at))

    def reconnect(self) -> None:
        """Hold the ``retry:`` hint."""
        self._hold(wire.RECONNECT)

    def take(self, at_least: int = 0) -> bytes | None:
        """The held frames joined into one write (see :class:`FrameSink`)."""
        if not self._frames or self._size < at_least:
            return None
        write = b"".join(self._frames)
        self._frames, self._size = [], 0
        return write


@dataclasses.dataclass
class EventStream:
    """Serves one stream to one client; iterate :meth:`frames`."""

    #: The admitted connection: the stream's record and terminal event, and
    #: the lease that counts it (see :mod:`~flask_sse_resilience.serve.admission`).
    connection: Connection
    last_event_id: str | None
    log: EventLog
    registry: StreamRegistry
    broker: Broker | None
    keepalive: float
    #: Runs a pipeline (``build(pipe)`` -> replies); by default on its own,
    #: in the extension shared with concurrent requests (see
    #: :mod:`~flask_sse_resilience.redisio.sharedpipe`).
    run_pipeline: Callable[[Callable[[Any], None]], list[Any]] | None = None
    #: The client's socket when the server exposes it (gunicorn), else None.
    client_socket: Any = None
    #: Seconds after which a healthy live response ends with a ``retry:``
    #: hint (already jittered by the caller); 0 never.
    max_age: float = 0.0
    #: Where a client without a cursor starts (see
    #: :data:`~flask_sse_resilience.models.StartFrom`).
    start_from: StartFrom = "snapshot"
    #: Called once the response body starts, and once it ends.
    on_connect: Callable[[], None] | None = None
    on_disconnect: Callable[[], None] | None = None
    #: When the stream token this client connected with expires (epoch
    #: seconds), or None (a cookie); a ``token-expiring`` frame is sent
    #: ``refresh_lead`` seconds before.
    token_expires: float | None = None
    refresh_lead: float = 30.0
    #: Where what this stream serves goes, framed: its own response's body
    #: by default; a multiplexed response's queue, with its cursor (see
    #: :mod:`~flask_sse_resilience.serve.multiplex`).
    sink: FrameSink = dataclasses.field(default_factory=ResponseFrames)
    #: Log id and sequence number of the last event this client has.
    _last_id: str | None = None
    _last_seq: int = 0
    #: The snapshot this client starts from, if any.
    _snapshot: Event | None = None
    _follower: Any = None
    _stopped: bool = False

    @property
    def stream_id(self) -> str:
        """The stream served."""
        return self.connection.stream_id

    def frames(self) -> Iterator[bytes]:
        """Serve the stream to its :attr:`sink`, yielding the sink's writes for
        this stream's own body (none for a sink that delivers elsewhere); ends
        after the terminal event."""
        self.sink.hello(self.stream_id, self.keepalive)
        yield from self._flush()
        if self.on_connect is not None:
            self.on_connect()
        try:
            if self.connection.record.state is not StreamState.ACTIVE:
                yield from self._ended()
            else:
                yield from self._follow()
        except UNAVAILABLE as exc:
            # End the response; the client reconnects with Last-Event-ID and is
            # answered 503 until Redis is back, then resumes where it was.
            outages.of(self.log.redis).failed(exc)
            log.debug("Redis unavailable, ending stream %s: %s", self.stream_id, exc)
        finally:
            if self.on_disconnect is not None:
                self.on_disconnect()

    def _ended(self) -> Iterator[bytes]:
        completion = self.connection.completion
        assert completion is not None  # an ended stream without one is gone
        if self.last_event_id is not None:
            if (yield from self._in_writes(self._replay(self._first_page()))):
                return
        # A new client, or the log expired meanwhile: the end is all it needs.
        yield from self._send(completion.to_event())

    def _follow(self) -> Iterator[bytes]:
        assert self.broker is not None
        follower = self._follower = self.broker.subscribe(
            self.stream_id, self.connection.expires_at
        )
        if self._stopped:
            follower.close(Notice.DISCONNECTED)
        hangup = disconnect.listen_for_hangup(
            self.client_socket,
            lambda: follower.close(Notice.DISCONNECTED),
            # Half a heartbeat: with TCP's retransmission backoff, a vanished
            # client is dropped within two keep-alive intervals.
            timeout_ms=int(self.keepalive * 500),
        )
        rotate_at = time.monotonic() + self.max_age if self.max_age > 0 else None
        notify_at = wire.token_notice_at(self.token_expires, self.refresh_lead)
        try:
            page = self._open()
            if (yield from self._in_writes(self._replay(page))):
                return
            while True:
                wait = self.keepalive
                if rotate_at is not None:
                    wait = min(wait, rotate_at - time.monotonic())
                    if wait <= 0:
                        # Old enough: resume elsewhere (or here) by cursor.
                        self.sink.reconnect()
                        yield from self._flush()
                        return
                if notify_at is not None:
                    if notify_at <= time.monotonic():
                        assert self.token_expires is not None
                        self.sink.token_expiring(self.token_expires)
                        yield from self._flush()
                        notify_at = None
                        continue
                    wait = min(wait, notify_at - time.monotonic())
                follower.seq = self._last_seq
                item = follower.wait(self._last_seq, timeout=wait)
                if isinstance(item, list):
                    # The hot path: every event this client lacks, each frame
                    # encoded once per worker, in one write.
                    if (yield from self._in_writes(self._deliver(iter(item)))):
                        return
                    continue
                if item is None:
                    now = time.monotonic()
                    if (rotate_at is not None and now >= rotate_at) or (
                        notify_at is not None and now >= notify_at
                    ):
                        continue  # no keep-alive: the rotation or notice comes next
                    self.sink.keepalive()
                    yield from self._flush()
                elif isinstance(item, Event):
                    if item.id is None:
                        yield from self._send(item)  # end notice: the stream vanished
                    else:  # the end found in Redis, never announced to us
                        yield from self._in_writes(self._through(item))
                    return
                elif item is Notice.DISCONNECTED:
                    return
                elif item is Notice.RECONNECT:
                    # Reconnect soon, to a live worker, by Last-Event-ID.
                    self.sink.reconnect()
                    yield from self._flush()
                    return
                else:  # RESYNC, or BEHIND the timeline: catch up from the log
                    seq = self._last_seq
                    if (yield from self._in_writes(self._deliver(self._catch_up()))):
                        return
                    events = follower.timeline.events
                    if item is Notice.BEHIND and self._last_seq == seq and events:
                        # The log lost what the timeline holds (Redis lost it,
                        # say): no gap in silence, and no spinning on BEHIND.
                        self._last_id, self._last_seq = None, events[0].seq - 1
                        yield from self._send(TRIMMED)
        finally:
            hangup.cancel()
            self.broker.unsubscribe(follower)

    def stop(self) -> None:
        """End a live :meth:`frames` from another thread or greenlet (its
        client went away); harmless before it follows or after it ended."""
        self._stopped = True
        follower = self._follower
        if follower is not None:
            follower.close(Notice.DISCONNECTED)

    def _flush(self) -> Iterator[bytes]:
        """Yield what the sink holds for this stream's body, as one write."""
        write = self.sink.take()
        if write is not None:
            yield write

    def _send(self, event: Event) -> Iterator[bytes]:
        """Send one event on its own (a notice, or the end found in Redis)."""
        self.sink.event(event)
        yield from self._flush()

    def _in_writes(self, events: Iterator[Event]) -> Generator[bytes, None, bool]:
        """Send ``events`` (already filtered by :meth:`_deliver`) to the sink,
        yielding its frames joined into writes of about :data:`WRITE_BYTES`;
        return True after a terminal event."""
        sink = self.sink
        for event in events:
            sink.event(event)
            if event.terminal:
                yield from self._flush()
                return True
            write = sink.take(WRITE_BYTES)
            if write is not None:
                yield write
        yield from self._flush()
        return False

    def _open(self) -> list[Event]:
        """Count this connection for the stream and read the first page of
        the log (from the latest snapshot, for a client without a cursor),
        in one round trip; return the page."""
        record = self.connection.record
        if self.last_event_id is None and self.start_from == "latest":
            self.last_event_id = record.last_event_id  # None: nothing sent yet
        from_snapshot = (
            self.last_event_id is None
            and self.start_from == "snapshot"
            and record.snapshot_id is not None
        )
        start = (record.snapshot_id or "-") if from_snapshot else self._start()

        def build(pipe: Any) -> None:
            self.connection.queue_join(pipe)
            if from_snapshot:
                self.log.queue_read_snapshot(pipe, self.stream_id)
            self.log.queue_read_from(pipe, self.stream_id, start, PAGE)

        replies = (self.run_pipeline or self._own_pipeline)(build)
        page = self.log.parse_entries(replies[-1])
        if from_snapshot:
            self._snapshot = parse_snapshot(replies[-2])
            if self._snapshot is None:  # gone with an end meanwhile: the log
                page = self.log.read_from(self.stream_id, "-", PAGE)
        return page

    def _own_pipeline(self, build: Callable[[Any], None]) -> list[Any]:
        return run_pipeline(self.registry.redis, build)

    def _start(self) -> str:
        """Where this client's replay starts in the log (inclusive)."""
        return "-" if self.last_event_id is None else self.last_event_id

    def _first_page(self) -> list[Event]:
        return self.log.read_from(self.stream_id, self._start(), PAGE)

    def _replay(self, page: list[Event]) -> Iterator[Event]:
        """The first events for this client: everything after Last-Event-ID,
        given the first ``page`` of the log from there (see :meth:`_start`)."""
        snapshot = self._snapshot
        if snapshot is not None:
            # A late joiner: the snapshot, then what came after it (the page
            # starts at it, or before it when a newer one raced the read).
            self._last_id, self._last_seq = snapshot.id, snapshot.seq
            yield snapshot
        elif self.last_event_id is not None:
            if page and page[0].id == self.last_event_id:
                self._last_id, self._last_seq = page[0].id, page[0].seq
            else:
                # The client's event is not in the log: trimmed, or an id this
                # stream never sent. Start over, explicitly unless provably
                # nothing was lost (an id before the very first event).
                first = page[0] if page else None
                before_start = (
                    first is not None
                    and first.seq == 1
                    and _position(self.last_event_id) < _position(first.id)
                )
                if not before_start:
                    yield from self._reset("unknown-last-event-id")
                    return
        elif page:
            # A new client wants the whole log; a trimmed start is no gap to it.
            self._last_seq = page[0].seq - 1
        yield from self._deliver(self._rest(page))

    def _rest(self, page: list[Event]) -> Iterator[Event]:
        """``page``, then the rest of the log after it if it was full."""
        yield from page
        if len(page) >= PAGE:
            yield from self.log.iter_after(self.stream_id, page[-1].id, PAGE)

    def _catch_up(self) -> Iterator[Event]:
        return self.log.iter_after(self.stream_id, self._last_id)

    def _through(self, end: Event) -> Iterator[Event]:
        """Up to ``end``, a terminal event never announced here: the log after
        this client's position, else (the log lost some) a reset and ``end``."""
        for event in self._deliver(self._catch_up()):
            yield event
            if event.terminal:
                return
        if end.seq != self._last_seq + 1:
            yield TRIMMED
        yield end

    def _reset(self, reason: str) -> Iterator[Event]:
        self._last_id, self._last_seq = None, 0
        yield Event.unlogged(wire.reset(reason))
        log_events = self._catch_up()
        first = next(log_events, None)
        if first is not None:
            self._last_seq = first.seq - 1
            yield from self._deliver(itertools.chain((first,), log_events))

    def _deliver(self, events: Iterator[Event]) -> Iterator[Event]:
        """Yield the events the client lacks, in order, each exactly once."""
        for event in events:
            if event.seq <= self._last_seq:
                continue
            if event.seq > self._last_seq + 1:
                # The log was trimmed past this client's position.
                yield from self._reset("log-trimmed")
                return
            self._last_id, self._last_seq = event.id, event.seq
            yield event
