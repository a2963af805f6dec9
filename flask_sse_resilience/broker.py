"""Live delivery: one pub/sub connection per worker, fanned out to connections.

Each SSE connection gets a :class:`Subscription` (a bounded in-process queue).
The :class:`Broker` keeps one Redis pub/sub connection for the whole process,
subscribes to a stream's channel while at least one local connection follows
it, and copies every announced event into those queues. Events are parsed once
per worker, not once per connection.

Whenever Redis confirms a subscription (first subscribe, or resubscribe after a
reconnect) every local follower of that stream receives :data:`RESYNC`, telling
it to catch up from the log by its last id; so a dropped pub/sub connection, or
an event published before the subscription took effect, loses nothing. A
follower too slow to keep its queue below the bound is told the same instead of
growing without limit.
"""

from __future__ import annotations

import enum
import logging
import os
import queue
import random
import threading
from typing import Any, Final

from .eventlog import parse_message
from .keys import Keys
from .models import Event
from .redisutil import UNAVAILABLE, RedisClient, as_text

log = logging.getLogger(__name__)


class Signal(enum.Enum):
    """Queue items that are not events."""

    #: Events may have been missed: catch up from the log.
    RESYNC = "resync"
    #: The client went away: stop serving it.
    DISCONNECTED = "disconnected"
    #: The worker is stopping, or lost Redis: tell the client to reconnect
    #: (elsewhere, or later) and resume by its last event id.
    RECONNECT = "reconnect"


RESYNC: Final = Signal.RESYNC
Item = Event | Signal


class Subscription:
    """One connection's mailbox for the live events of one stream."""

    def __init__(self, stream_id: str, maxsize: int) -> None:
        self.stream_id = stream_id
        # SimpleQueue: under gevent it is gevent's own (C-accelerated) queue,
        # several times cheaper per item than queue.Queue's condition locks.
        self._queue: queue.SimpleQueue[Item] = queue.SimpleQueue()
        self._maxsize = maxsize
        self._overflowed = False
        self._closed: Signal | None = None

    def put(self, item: Item) -> None:
        """Offer an item without blocking; on overflow, flag a resync instead."""
        if self._queue.qsize() >= self._maxsize:
            self._overflowed = True
        else:
            self._queue.put_nowait(item)

    def close(self, reason: Signal) -> None:
        """End the subscription: the next :meth:`get` returns ``reason``."""
        self._closed = reason
        self._queue.put_nowait(reason)  # wakes a waiting get()

    def get(self, timeout: float) -> Item | None:
        """Return the next event or :class:`Signal`, or None after ``timeout`` s."""
        if self._closed is not None:
            return self._closed
        if self._overflowed:
            self._overflowed = False
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    return RESYNC
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None


class Broker:
    """The process's pub/sub listener and its fan-out to subscriptions."""

    def __init__(
        self, redis: RedisClient, keys: Keys, *, queue_size: int, poll: float = 1.0
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.queue_size = queue_size
        self.poll = poll
        self.pid = os.getpid()
        self._subs: dict[str, set[Subscription]] = {}
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

    def subscribe(self, stream_id: str) -> Subscription:
        """Start following a stream; the caller must :meth:`unsubscribe`."""
        sub = Subscription(stream_id, self.queue_size)
        with self._lock:
            followers = self._subs.setdefault(stream_id, set())
            followers.add(sub)
            first = len(followers) == 1
        self._ensure_running()
        if first:
            self._send("subscribe", stream_id)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop delivering to ``sub``; the last one out leaves the channel."""
        with self._lock:
            followers = self._subs.get(sub.stream_id)
            if followers is None:
                return
            followers.discard(sub)
            last = not followers
            if last:
                del self._subs[sub.stream_id]
        if last:
            self._send("unsubscribe", sub.stream_id)

    def close_all(self, reason: Signal) -> int:
        """Close every subscription of this process; return how many."""
        with self._lock:
            subs = [sub for followers in self._subs.values() for sub in followers]
        for sub in subs:
            sub.close(reason)
        return len(subs)

    @property
    def followers(self) -> int:
        """Number of local connections following some stream."""
        with self._lock:
            return sum(len(followers) for followers in self._subs.values())

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
        with self._lock:
            followers = list(self._subs.get(stream_id, ()))
        if not followers:
            return
        item: Item
        if kind == "subscribe":
            item = RESYNC
        else:
            try:
                item = parse_message(message["data"])
            except ValueError:
                log.error("malformed announcement on %s", message["channel"])
                item = RESYNC
        for sub in followers:
            sub.put(item)
