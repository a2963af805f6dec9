"""One SSE connection: replay from the log, then follow live events.

The generator built here is what a stream response iterates. It receives only
plain values (no request proxies), so it runs fine after the view returned.

Delivery is exactly once. Every event carries its stream's sequence number:
a live event whose number is not the next one expected is either a duplicate
(skipped) or reveals a gap, which is filled from the log by the last delivered
id. If the log no longer holds what the client needs (it is capped), the client
gets an explicit ``reset`` event and then the log from its start, never a
silent gap.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

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
from .broker import Broker, Notice

log = logging.getLogger(__name__)


#: The reconnection delay advised to clients of a worker that shuts down, or
#: of a connection that reached its maximum age, in ms.
RECONNECT_MS = 500

#: Log entries read per round trip when a client catches up.
PAGE = 500

#: Frames joined into one write when a client is behind, in bytes at most
#: (plus one frame).
WRITE_BYTES = 64 * 1024

#: Sent when the log lost events a client lacks, before what is left of them.
TRIMMED = Event(id=None, seq=0, type="reset", data_json='{"reason":"log-trimmed"}')


def _position(event_id: str | None) -> tuple[int, int]:
    return parse_event_id(event_id or "") or (0, 0)


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
    #: in the extension shared with concurrent requests (see ``pipelining``).
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
    #: Frames an event: by default :meth:`Event.encode
    #: <flask_sse_resilience.models.Event.encode>`; a multiplexed response
    #: (:mod:`~flask_sse_resilience.serve.multiplex`) frames it with its own cursor.
    encode_event: Callable[[Event], bytes] | None = None
    #: Whether :meth:`frames` starts with the ``connected`` frame.
    hello: bool = True
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
        """Yield the response body; ends after the terminal event."""
        if self.hello:
            yield wire.connected_frame(self.stream_id, self.keepalive)
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
        yield self._encode(completion.to_event())

    def _follow(self) -> Iterator[bytes]:
        assert self.broker is not None
        follower = self._follower = self.broker.subscribe(
            self.stream_id, self.connection.expires_at
        )
        if self._stopped:
            follower.close(Notice.DISCONNECTED)
        watch = disconnect.watch(
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
                        yield wire.encode_retry(RECONNECT_MS)
                        return
                if notify_at is not None:
                    if notify_at <= time.monotonic():
                        assert self.token_expires is not None
                        yield wire.token_expiring_frame(self.token_expires)
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
                    yield wire.KEEPALIVE
                elif isinstance(item, Event):
                    if item.id is None:
                        yield self._encode(item)  # end notice: the stream vanished
                    else:  # the end found in Redis, never announced to us
                        yield from self._in_writes(self._through(item))
                    return
                elif item is Notice.DISCONNECTED:
                    return
                elif item is Notice.RECONNECT:
                    # Reconnect soon, to a live worker, by Last-Event-ID.
                    yield wire.encode_retry(RECONNECT_MS)
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
                        yield self._encode(TRIMMED)
        finally:
            watch.cancel()
            self.broker.unsubscribe(follower)

    def stop(self) -> None:
        """End a live :meth:`frames` from another thread or greenlet (its
        client went away); harmless before it follows or after it ended."""
        self._stopped = True
        follower = self._follower
        if follower is not None:
            follower.close(Notice.DISCONNECTED)

    def _encode(self, event: Event) -> bytes:
        return event.encode() if self.encode_event is None else self.encode_event(event)

    def _in_writes(self, events: Iterator[Event]) -> Generator[bytes, None, bool]:
        """Yield the frames of ``events`` (already filtered by :meth:`_deliver`),
        joined into writes of about :data:`WRITE_BYTES`; return True after a
        terminal event."""
        frames: list[bytes] = []
        size = 0
        for event in events:
            frame = self._encode(event)
            frames.append(frame)
            size += len(frame)
            if event.terminal:
                yield b"".join(frames)
                return True
            if size >= WRITE_BYTES:
                yield b"".join(frames)
                frames, size = [], 0
        if frames:
            yield b"".join(frames)
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
        reset = json.dumps({"reason": reason})
        yield Event(id=None, seq=0, type="reset", data_json=reset)
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
