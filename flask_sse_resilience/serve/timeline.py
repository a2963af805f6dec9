"""A stream's recent live events in one process, and each connection's place
in them.

The :class:`Timeline` of a stream holds a bounded run of recent events with
consecutive sequence numbers, parsed and encoded once per worker; every local
connection to the stream is a :class:`Follower` that keeps only its position,
waits for what comes after it, and takes everything it lacks at once.
The :mod:`~flask_sse_resilience.serve.broker` fills timelines from pub/sub.
"""

from __future__ import annotations

import enum
import threading
import time
from typing import Final

from .. import wire
from ..models import Event

#: Most events handed to a follower at once (one socket write).
MAX_HANDOUT: Final = 256

#: The end notices of a followed stream whose record vanished (see
#: :data:`~flask_sse_resilience.wire.EXPIRED`): its TTL ran out, or it went
#: otherwise. The worker serving a client decides which (see
#: :mod:`~flask_sse_resilience.serve.presence`); a script that finds a record
#: gone announces ``expired``, as it cannot tell.
EXPIRED: Final = Event.unlogged(wire.EXPIRED)
LOST: Final = Event.unlogged(wire.LOST)


class Notice(enum.Enum):
    """What :meth:`Follower.wait` returns when it is not events."""

    #: Events may have been missed: check the stream and catch up from the log.
    RESYNC = "resync"
    #: The follower is behind what the timeline holds: catch up from the log.
    BEHIND = "behind"
    #: The client went away: stop serving it.
    DISCONNECTED = "disconnected"
    #: The worker is stopping, or lost Redis: tell the client to reconnect
    #: (elsewhere, or later) and resume by its last event id.
    RECONNECT = "reconnect"


class Timeline:
    """Recent live events of one stream in this process, shared by its followers.

    ``events`` always holds consecutive sequence numbers. Events every follower
    has passed are dropped, and at most ``capacity`` are kept.
    """

    __slots__ = (
        "capacity", "changed", "end", "events", "expires_at", "followers",
        "resyncs", "started",
    )  # fmt: skip

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.events: list[Event] = []
        self.followers: set[Follower] = set()
        #: Bumped whenever followers must catch up from the log.
        self.resyncs = 0
        #: How the stream ends for followers that did not hear its terminal
        #: event announced: the end notice of a stream that vanished (no id),
        #: or its terminal event as found in Redis (see :meth:`finish`).
        self.end: Event | None = None
        #: When the stream's record expires (``time.monotonic()``), as read on
        #: admission, and its ``startedAt`` as first seen by the
        #: :mod:`~flask_sse_resilience.serve.presence` check: what tells an expired
        #: record from a lost one, and a record made again under its id.
        self.expires_at: float | None = None
        self.started: str | None = None
        self.changed = threading.Event()

    @property
    def over(self) -> bool:
        """True once the followers have their way to the end: its terminal
        event was announced, or :attr:`end` is set."""
        events = self.events
        return self.end is not None or bool(events and events[-1].terminal)

    def vanished(self, at: float) -> Event:
        """The end notice of this stream, its record found gone at ``at``
        (``time.monotonic()``): :data:`EXPIRED` if the record's TTL had run
        out by then, else :data:`LOST`."""
        expires_at = self.expires_at
        return EXPIRED if expires_at is not None and at >= expires_at else LOST

    def finish(self, end: Event) -> None:
        """End every follower with ``end`` (after the events they lack) unless
        an end was set already; wake them."""
        if self.end is None:
            self.end = end
        self.wake()

    def wake(self) -> None:
        """Wake every follower waiting on this timeline."""
        changed, self.changed = self.changed, threading.Event()
        changed.set()

    def add(self, announced: list[Event]) -> None:
        """Append the events of one announcement (duplicates ignored; a gap
        starts over), then wake the followers once."""
        for event in announced:
            if event.id is None:
                # A script found the record gone; whether it expired is
                # known here (its expiry, read on admission), not there.
                self.end = self.end or self.vanished(time.monotonic())
                continue
            events = self.events
            if events and event.seq <= events[-1].seq:
                continue  # a duplicate announcement
            if events and event.seq != events[-1].seq + 1:
                # Missed announcements: followers read the log.
                events = self.events = []
            events.append(event)
            if len(events) > self.capacity or len(events) % 64 == 0:
                self._trim()
        self.wake()

    def resync(self) -> None:
        """Tell every follower to catch up from the log."""
        self.resyncs += 1
        self.wake()

    def _trim(self) -> None:
        events = self.events
        first = events[0].seq
        passed = min((f.seq for f in self.followers), default=events[-1].seq)
        drop = max(passed - first + 1, len(events) - self.capacity, 0)
        if drop:
            # A new list, never a shortened one: a follower in another thread
            # may be slicing the old one, which only ever grows at its end.
            self.events = events[drop:]


class Follower:
    """One connection's place in a stream's :class:`Timeline`."""

    __slots__ = ("_resyncs", "closed", "seq", "stream_id", "timeline")

    def __init__(self, stream_id: str, timeline: Timeline) -> None:
        self.stream_id = stream_id
        self.timeline = timeline
        #: Sequence number of the last event this connection has delivered;
        #: kept up to date by the caller so that passed events can be dropped.
        self.seq = 0
        self.closed: Notice | None = None
        self._resyncs = timeline.resyncs

    def close(self, reason: Notice) -> None:
        """End the follower: :meth:`wait` returns ``reason`` from now on."""
        self.closed = reason
        self.timeline.wake()

    def wait(self, after: int, timeout: float) -> list[Event] | Event | Notice | None:
        """Return the events after sequence number ``after`` (at most
        :data:`MAX_HANDOUT`, in order), else a :class:`Notice`, else the
        timeline's :attr:`~Timeline.end`; or None if nothing came within
        ``timeout`` s."""
        timeline = self.timeline
        deadline = time.monotonic() + timeout
        while True:
            # Take the wake-up before looking, so no wake-up is missed between.
            changed = timeline.changed
            if self.closed is not None:
                return self.closed
            if self._resyncs != timeline.resyncs:
                self._resyncs = timeline.resyncs
                return Notice.RESYNC
            events = timeline.events
            if events and after < events[-1].seq:
                start = after + 1 - events[0].seq
                if start < 0:
                    return Notice.BEHIND
                return events[start : start + MAX_HANDOUT]
            if timeline.end is not None:
                return timeline.end
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not changed.wait(remaining):
                return None
