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
from .redisutil import UNAVAILABLE, RedisClient, as_text, is_cluster

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


class _Link:
    """One pub/sub connection (to the Redis, or to one cluster node) and the
    thread listening on it."""

    def __init__(
        self, broker: Broker, name: str, make_pubsub: Any, *, sharded: bool
    ) -> None:
        self.broker = broker
        self.name = name
        self.make_pubsub = make_pubsub
        self.sharded = sharded
        self.commands = ("ssubscribe", "sunsubscribe") if sharded else (
            "subscribe", "unsubscribe"
        )  # fmt: skip
        #: Streams subscribed through this link.
        self.streams: set[str] = set()
        self.connects = 0
        self._io_lock = threading.RLock()
        self._pubsub: Any = None
        self._thread: threading.Thread | None = None

    def subscribe(self, stream_id: str) -> None:
        """Subscribe to a stream already added to :attr:`streams`."""
        self._ensure_running()
        self._send(self.commands[0], stream_id)

    def unsubscribe(self, stream_id: str) -> None:
        """Unsubscribe from a stream already removed from :attr:`streams`."""
        self._send(self.commands[1], stream_id)

    def _send(self, command: str, stream_id: str) -> None:
        with self._io_lock:
            pubsub = self._pubsub
            if pubsub is None:
                return  # the listener subscribes to everything when it connects
            try:
                getattr(pubsub, command)(self.broker.keys.channel(stream_id))
            except UNAVAILABLE:
                log.warning("pub/sub %s failed; the listener will reconnect", command)
                self.close()

    def _ensure_running(self) -> None:
        with self._io_lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(
                target=self._run, name=f"sse-resilience-pubsub-{self.name}", daemon=True
            )
            self._thread.start()

    def _connect(self) -> Any:
        # Under the I/O lock, so that a subscribe() racing with us either is in
        # the channel list read here or sends its own SUBSCRIBE on the new
        # connection, never neither; and only one greenlet opens the socket.
        with self._io_lock:
            pubsub = self.make_pubsub()
            channels = [self.broker.keys.channel(sid) for sid in list(self.streams)]
            try:
                for channel in channels:  # one by one: a cluster wants one slot each
                    getattr(pubsub, self.commands[0])(channel)
            except BaseException:
                pubsub.close()
                raise
            self._pubsub = pubsub
        self.connects += 1
        return pubsub

    def close(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            try:
                pubsub.close()
            except Exception:  # noqa: BLE001 - closing a broken socket
                log.debug("closing pub/sub failed", exc_info=True)

    def _run(self) -> None:
        broker = self.broker
        delay = 0.05
        while not broker.stopped.is_set():
            if self.sharded and broker.retire(self):
                break  # a cluster node's link lives while it carries streams
            try:
                pubsub = self._pubsub or self._connect()
                message = pubsub.get_message(timeout=broker.poll)
            except Exception as exc:  # noqa: BLE001 - the listener must survive
                # Exponential backoff with jitter, so the workers of a fleet do
                # not reconnect in lockstep when Redis comes back.
                pause = random.uniform(delay / 2, delay)
                if isinstance(exc, UNAVAILABLE):
                    log.warning("pub/sub lost (%s); retrying in %.2fs", exc, pause)
                else:
                    log.exception("pub/sub listener failed; reconnecting")
                self.close()
                # Nothing reaches these followers until Redis is back: let
                # their clients know (they retry, with backoff, and resume)
                # rather than leave them on a line that went silent.
                broker.close_streams(list(self.streams), Signal.RECONNECT)
                broker.lost(self)
                broker.stopped.wait(pause)
                delay = min(delay * 2, 2.0)
                continue
            delay = 0.05
            if message is not None:
                broker.dispatch(message)
        self.close()

    def stop(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout=timeout)
        self.close()


class Broker:
    """The process's pub/sub listeners and their fan-out to followers.

    On a single Redis (or behind Sentinel) one pub/sub connection carries
    every stream; on a cluster, streams are followed with sharded pub/sub
    (``SSUBSCRIBE``) on the node serving their slot, one connection per node
    at most.
    """

    def __init__(
        self, redis: RedisClient, keys: Keys, *, buffer: int, poll: float = 1.0
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.buffer = buffer
        self.poll = poll
        self.pid = os.getpid()
        self.cluster = is_cluster(redis)
        self._subs: dict[str, Timeline] = {}
        self._homes: dict[str, _Link] = {}
        self._links: dict[str, _Link] = {}
        self._lock = threading.Lock()
        self.stopped = threading.Event()

    @property
    def connects(self) -> int:
        """Times the listeners have (re)connected; for tests and metrics."""
        return sum(link.connects for link in list(self._links.values()))

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
            if first:
                link = self._homes[stream_id] = self._link_for(stream_id)
                link.streams.add(stream_id)
        if first:
            self.stopped.clear()
            link.subscribe(stream_id)
        return follower

    def unsubscribe(self, follower: Follower) -> None:
        """Stop following; the last one out leaves the channel."""
        link = None
        with self._lock:
            timeline = self._subs.get(follower.stream_id)
            if timeline is None or follower not in timeline.followers:
                return
            timeline.followers.discard(follower)
            if not timeline.followers:
                del self._subs[follower.stream_id]
                link = self._homes.pop(follower.stream_id, None)
                if link is not None:
                    link.streams.discard(follower.stream_id)
        if link is not None:
            link.unsubscribe(follower.stream_id)

    def close_all(self, reason: Signal) -> int:
        """Close every follower in this process; return how many."""
        return self.close_streams(list(self._subs), reason)

    def close_streams(self, stream_ids: list[str], reason: Signal) -> int:
        """Close every local follower of the given streams; return how many."""
        with self._lock:
            followers = [
                f for sid in stream_ids if sid in self._subs
                for f in self._subs[sid].followers
            ]  # fmt: skip
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
        """Stop the listeners and close their connections."""
        self.stopped.set()
        for link in list(self._links.values()):
            link.stop(timeout=self.poll * 3)

    def _link_for(self, stream_id: str) -> _Link:
        """The link serving ``stream_id``'s channel (caller holds the lock)."""
        if not self.cluster:
            name, make = "main", self.redis.pubsub
        else:
            node = self.redis.get_node_from_key(self.keys.channel(stream_id))  # type: ignore[union-attr]
            name = node.name
            make = self.redis.get_redis_connection(node).pubsub  # type: ignore[union-attr]
        link = self._links.get(name)
        if link is None:
            link = self._links[name] = _Link(self, name, make, sharded=self.cluster)
        return link

    def lost(self, link: _Link) -> None:
        """A link lost its connection: on a cluster, let go of its streams
        (their followers were told to reconnect; they will subscribe afresh,
        through whichever node serves their slot after a failover) and
        refresh the cluster's map of slots."""
        if not self.cluster:
            return
        with self._lock:
            for stream_id in list(link.streams):
                if self._homes.get(stream_id) is link:
                    # The next follower of it starts a new timeline and
                    # subscription; the old followers are on their way out.
                    self._homes.pop(stream_id, None)
                    self._subs.pop(stream_id, None)
            link.streams.clear()
        try:
            self.redis.nodes_manager.initialize()  # type: ignore[union-attr]
        except Exception:  # noqa: BLE001 - the next command retries it anyway
            log.debug("refreshing the cluster map failed", exc_info=True)

    def retire(self, link: _Link) -> bool:
        """Drop a cluster node's link that carries no stream; True if dropped.
        Under the lock, so a subscribe either finds it busy or makes a new one."""
        with self._lock:
            if link.streams:
                return False
            if self._links.get(link.name) is link:
                del self._links[link.name]
            return True

    def dispatch(self, message: dict[str, Any]) -> None:
        """Hand one pub/sub message to the followers of its stream."""
        kind = message.get("type")
        if kind not in ("message", "smessage", "subscribe", "ssubscribe"):
            return
        stream_id = self.keys.stream_id_from_channel(as_text(message["channel"]))
        timeline = self._subs.get(stream_id)
        if timeline is None:
            return
        if kind in ("subscribe", "ssubscribe"):
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
