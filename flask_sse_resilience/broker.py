"""Live delivery: one pub/sub connection per worker, one buffer per stream.

The :class:`Broker` keeps one Redis pub/sub connection for the whole process and
subscribes to a stream's channel while at least one local connection follows
it. Every announced event is parsed and encoded once per worker into that
stream's :class:`Timeline`, a bounded run of recent events with consecutive
sequence numbers that all local followers read: per connection there is only
a :class:`Follower` holding its position. A follower that is behind takes every
event it lacks from the timeline at once, so one socket write carries many
events.

Whenever Redis confirms a subscription (first subscribe, or resubscribe after a
reconnect) every local follower of that stream is told to :data:`RESYNC`: catch
up from the log by its last id; so a dropped pub/sub connection, or an event
published before the subscription took effect, loses nothing. A follower
further behind than the timeline reaches back is told :data:`BEHIND` and reads
the log instead; memory per stream stays bounded.
"""

from __future__ import annotations

import enum
import logging
import os
import random
import threading
import time
from typing import Any, Final

from .eventlog import parse_message
from .keys import Keys
from .models import Event
from .redisutil import UNAVAILABLE, RedisClient, as_text

log = logging.getLogger(__name__)

#: Most events handed to a follower in one batch (one socket write).
BATCH: Final = 256


class Signal(enum.Enum):
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


RESYNC: Final = Signal.RESYNC
BEHIND: Final = Signal.BEHIND


class Timeline:
    """Recent live events of one stream in this process, shared by its followers.

    ``events`` always holds consecutive sequence numbers. Events every follower
    has passed are dropped, and at most ``capacity`` are kept.
    """

    __slots__ = ("capacity", "changed", "end", "events", "followers", "resyncs")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.events: list[Event] = []
        self.followers: set[Follower] = set()
        #: Bumped whenever followers must catch up from the log.
        self.resyncs = 0
        #: The end notice of a stream that vanished, once announced.
        self.end: Event | None = None
        self.changed = threading.Event()

    def wake(self) -> None:
        """Wake every follower waiting on this timeline."""
        changed, self.changed = self.changed, threading.Event()
        changed.set()

    def add(self, event: Event) -> None:
        """Append an announced event (duplicates ignored; a gap starts over)."""
        if event.id is None:
            self.end = event
        else:
            events = self.events
            if events and event.seq <= events[-1].seq:
                return  # a duplicate announcement
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
        self.closed: Signal | None = None
        self._resyncs = timeline.resyncs

    def close(self, reason: Signal) -> None:
        """End the follower: :meth:`wait` returns ``reason`` from now on."""
        self.closed = reason
        self.timeline.wake()

    def wait(self, after: int, timeout: float) -> list[Event] | Event | Signal | None:
        """Return the events after sequence number ``after`` (at most
        :data:`BATCH`, in order), else a :class:`Signal`, else the end notice
        of a vanished stream; or None if nothing came within ``timeout`` s."""
        timeline = self.timeline
        deadline = time.monotonic() + timeout
        while True:
            # Take the wake-up before looking, so no wake-up is missed between.
            changed = timeline.changed
            if self.closed is not None:
                return self.closed
            if self._resyncs != timeline.resyncs:
                self._resyncs = timeline.resyncs
                return RESYNC
            events = timeline.events
            if events and after < events[-1].seq:
                start = after + 1 - events[0].seq
                if start < 0:
                    return BEHIND
                return events[start : start + BATCH]
            if timeline.end is not None:
                return timeline.end
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not changed.wait(remaining):
                return None


class Broker:
    """The process's pub/sub listener and its fan-out to subscriptions."""

    def __init__(
        self, redis: RedisClient, keys: Keys, *, buffer: int, poll: float = 1.0
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.buffer = buffer
        self.poll = poll
        self.pid = os.getpid()
        self._subs: dict[str, Timeline] = {}
        self._lock = threading.Lock()
        self._io_lock = threading.RLock()
        self._pubsub: Any = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        #: Times the listener has (re)connected; for tests and metrics.
        self.connects = 0

    @property
    def channels(self) -> int:
        """Number of streams this process currently follows."""
        return len(self._subs)

    def subscribe(self, stream_id: str) -> Follower:
        """Start following a stream; the caller must :meth:`unsubscribe`."""
        with self._lock:
            timeline = self._subs.get(stream_id)
            first = timeline is None
            if timeline is None:
                timeline = self._subs[stream_id] = Timeline(self.buffer)
            follower = Follower(stream_id, timeline)
            timeline.followers.add(follower)
        self._ensure_running()
        if first:
            self._send("subscribe", stream_id)
        return follower

    def unsubscribe(self, follower: Follower) -> None:
        """Stop following; the last one out leaves the channel."""
        with self._lock:
            timeline = self._subs.get(follower.stream_id)
            if timeline is None or follower not in timeline.followers:
                return
            timeline.followers.discard(follower)
            last = not timeline.followers
            if last:
                del self._subs[follower.stream_id]
        if last:
            self._send("unsubscribe", follower.stream_id)

    def close_all(self, reason: Signal) -> int:
        """Close every follower in this process; return how many."""
        with self._lock:
            followers = [f for t in self._subs.values() for f in t.followers]
        for follower in followers:
            follower.close(reason)
        return len(followers)

    @property
    def followers(self) -> int:
        """Number of local connections following some stream."""
        with self._lock:
            return sum(len(t.followers) for t in self._subs.values())

    def buffered(self, stream_id: str) -> int:
        """Number of live events this process holds for ``stream_id``."""
        timeline = self._subs.get(stream_id)
        return len(timeline.events) if timeline is not None else 0

    def stop(self) -> None:
        """Stop the listener and close its connection."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=self.poll * 3)
        self._close_pubsub()

    def _send(self, command: str, stream_id: str) -> None:
        with self._io_lock:
            pubsub = self._pubsub
            if pubsub is None:
                return  # the listener subscribes to everything when it connects
            try:
                getattr(pubsub, command)(self.keys.channel(stream_id))
            except UNAVAILABLE:
                log.warning("pub/sub %s failed; the listener will reconnect", command)
                self._close_pubsub()

    def _ensure_running(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopped.clear()
            self._thread = threading.Thread(
                target=self._run, name="sse-resilience-broker", daemon=True
            )
            self._thread.start()

    def _connect(self) -> Any:
        # Under the I/O lock, so that a subscribe() racing with us either is in
        # the channel list read here or sends its own SUBSCRIBE on the new
        # connection, never neither; and only one greenlet opens the socket.
        with self._io_lock:
            pubsub = self.redis.pubsub()  # type: ignore[no-untyped-call]
            with self._lock:
                channels = [self.keys.channel(sid) for sid in self._subs]
            try:
                if channels:
                    pubsub.subscribe(*channels)
            except BaseException:
                pubsub.close()
                raise
            self._pubsub = pubsub
        self.connects += 1
        return pubsub

    def _close_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            try:
                pubsub.close()
            except Exception:  # noqa: BLE001 - closing a broken socket
                log.debug("closing pub/sub failed", exc_info=True)

    def _run(self) -> None:
        delay = 0.05
        while not self._stopped.is_set():
            try:
                pubsub = self._pubsub or self._connect()
                message = pubsub.get_message(timeout=self.poll)
            except Exception as exc:  # noqa: BLE001 - the listener must survive
                # Exponential backoff with jitter, so the workers of a fleet do
                # not reconnect in lockstep when Redis comes back.
                pause = random.uniform(delay / 2, delay)
                if isinstance(exc, UNAVAILABLE):
                    log.warning("pub/sub lost (%s); retrying in %.2fs", exc, pause)
                else:
                    log.exception("pub/sub listener failed; reconnecting")
                self._close_pubsub()
                # Nothing reaches this worker's followers until Redis is back:
                # let their clients know (they retry, with backoff, and resume)
                # rather than leave them on a line that went silent.
                self.close_all(Signal.RECONNECT)
                self._stopped.wait(pause)
                delay = min(delay * 2, 2.0)
                continue
            delay = 0.05
            if message is not None:
                self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind not in ("message", "subscribe"):
            return
        stream_id = self.keys.stream_id_from_channel(as_text(message["channel"]))
        timeline = self._subs.get(stream_id)
        if timeline is None:
            return
        if kind == "subscribe":
            timeline.resync()
            return
        try:
            event = parse_message(message["data"])
        except ValueError:
            log.error("malformed announcement on %s", message["channel"])
            timeline.resync()
            return
        event.encode()  # once per worker, here; followers share the bytes
        timeline.add(event)
