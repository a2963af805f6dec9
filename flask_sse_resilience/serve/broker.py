"""Live delivery: one pub/sub connection per worker (per node on a cluster).

The :class:`Broker` keeps one Redis pub/sub connection for the whole process
(on a cluster, one sharded pub/sub connection per node serving a followed
stream) and subscribes to a stream's channel while at least one local
connection follows it. Every announced event is parsed and encoded once per
worker into that stream's :class:`~flask_sse_resilience.serve.timeline.Timeline`,
which all local followers read: per connection there is only a
:class:`~flask_sse_resilience.serve.timeline.Follower` holding its position.

The same links carry the control channels of the streams this process
produces: :meth:`Broker.subscribe_cancels` hands a stream's cancel requests to its
producer, the fast path of :mod:`~flask_sse_resilience.store.control`. Whenever
Redis confirms such a subscription (at first, and after a reconnect), the
stream's cancel flag is read once, so a request sent while the link was down
arrives as soon as it is back.

Whenever Redis confirms a subscription (first subscribe, or resubscribe after a
reconnect) every local follower of that stream is told to
:attr:`~flask_sse_resilience.serve.timeline.Notice.RESYNC`: catch up from the
log by its last id; so a dropped pub/sub connection, or an event published
before the subscription took effect, loses nothing. A follower further behind
than the timeline reaches back is told
:attr:`~flask_sse_resilience.serve.timeline.Notice.BEHIND` and reads the log
instead; memory per stream stays bounded.

A :class:`~flask_sse_resilience.serve.presence.PresenceCheck` ends the followers
of a stream whose record vanished, or ended unheard here.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from ..redisio import outages
from ..redisio.commands import RedisClient, as_text, is_cluster
from ..redisio.failures import UNAVAILABLE
from ..redisio.loops import supervise
from ..store.control import stored_request
from ..store.keys import Keys
from ..store.logentries import parse_message
from .presence import PresenceCheck
from .pubsub import Link
from .timeline import Follower, Notice, Timeline

log = logging.getLogger(__name__)

#: Called with a cancel request (``{"reason", "by"}``) sent to a stream.
OnRequest = Callable[[dict[str, Any] | None], None]


class Broker:
    """The process's pub/sub listeners and their fan-out to followers.

    On a single Redis (or behind Sentinel) one pub/sub connection carries
    every stream; on a cluster, streams are followed with sharded pub/sub
    (``SSUBSCRIBE``) on the node serving their slot, one connection per node
    at most. With ``presence``, it checks the records of the streams it follows.
    """

    def __init__(
        self,
        redis: RedisClient,
        keys: Keys,
        *,
        buffer: int,
        poll: float = 1.0,
        presence: PresenceCheck | None = None,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.buffer = buffer
        self.poll = poll
        self.pid = os.getpid()
        self.cluster = is_cluster(redis)
        self._subs: dict[str, Timeline] = {}
        #: Per stream with a producer here, its cancel listeners.
        self._cancel_listeners: dict[str, list[OnRequest]] = {}
        self._link_of: dict[str, Link] = {}
        self._links: dict[str, Link] = {}
        self._lock = threading.Lock()
        #: Set by :meth:`close_all`: every follower from then on is closed
        #: with it at once (the process is stopping).
        self.closing: Notice | None = None
        self.stopped = threading.Event()
        self.presence = presence
        supervise(self)

    def revive(self) -> None:
        """Restart the listener of every link that carries streams and whose
        thread ended; see :mod:`~flask_sse_resilience.redisio.loops`."""
        if self.pid != os.getpid() or self.stopped.is_set():
            return
        for link in list(self._links.values()):
            if link.channels:
                link.ensure_running()

    def resync(self, stream_ids: list[str]) -> None:
        """Have every local follower of these streams catch up from the log."""
        for stream_id in stream_ids:
            timeline = self._subs.get(stream_id)
            if timeline is not None:
                timeline.resync()

    @property
    def connects(self) -> int:
        """Times the listeners have (re)connected; for tests and metrics."""
        return sum(link.connects for link in list(self._links.values()))

    @property
    def channels(self) -> int:
        """Number of streams this process currently follows."""
        return len(self._subs)

    def subscribe(self, stream_id: str, expires_at: float | None = None) -> Follower:
        """Start following a stream (its record expires at ``expires_at``, see
        :class:`Timeline`); the caller must :meth:`unsubscribe`."""
        with self._lock:
            timeline = self._subs.get(stream_id)
            first = timeline is None
            if timeline is None:
                timeline = self._subs[stream_id] = Timeline(self.buffer)
            timeline.expires_at = timeline.expires_at or expires_at
            follower = Follower(stream_id, timeline)
            timeline.followers.add(follower)
            if self.closing is not None:  # admitted just before the stop
                follower.close(self.closing)
            link = self._join(self.keys.channel(stream_id)) if first else None
        if link is not None:
            self.stopped.clear()
            link.subscribe(self.keys.channel(stream_id))
        if first and self.presence is not None:
            self.presence.start(self.timelines)
        return follower

    def timelines(self) -> dict[str, Timeline]:
        """The timeline of every stream followed here, by stream id."""
        with self._lock:
            return dict(self._subs)

    def unsubscribe(self, follower: Follower) -> None:
        """Stop following; the last one out leaves the channel."""
        link = None
        channel = self.keys.channel(follower.stream_id)
        with self._lock:
            timeline = self._subs.get(follower.stream_id)
            if timeline is None or follower not in timeline.followers:
                return
            timeline.followers.discard(follower)
            if not timeline.followers:
                del self._subs[follower.stream_id]
                link = self._leave(channel)
        if link is not None:
            link.unsubscribe(channel)

    def subscribe_cancels(
        self, stream_id: str, on_request: OnRequest
    ) -> Callable[[], None]:
        """Call ``on_request`` with each cancel request sent to ``stream_id``
        (the producer's fast path); return the function that stops it."""
        channel = self.keys.control(stream_id)
        with self._lock:
            listeners = self._cancel_listeners.setdefault(stream_id, [])
            listeners.append(on_request)
            link = self._join(channel) if len(listeners) == 1 else None
        if link is not None:
            self.stopped.clear()
            link.subscribe(channel)

        def unsubscribe() -> None:
            link = None
            with self._lock:
                listeners = self._cancel_listeners.get(stream_id, [])
                if on_request not in listeners:
                    return
                listeners.remove(on_request)
                if not listeners:
                    del self._cancel_listeners[stream_id]
                    link = self._leave(channel)
            if link is not None:
                link.unsubscribe(channel)

        return unsubscribe

    def _join(self, channel: str) -> Link:
        """Add ``channel`` to the link serving it (caller holds the lock)."""
        link = self._link_of[channel] = self._link_for(channel)
        link.channels.add(channel)
        return link

    def _leave(self, channel: str) -> Link | None:
        """Take ``channel`` off its link (caller holds the lock)."""
        link = self._link_of.pop(channel, None)
        if link is not None:
            link.channels.discard(channel)
        return link

    def close_all(self, reason: Notice) -> int:
        """Close every follower in this process, and every one that comes
        later (a request admitted just before a stop); return how many were
        open."""
        with self._lock:
            self.closing = reason
        return self.close_streams(list(self._subs), reason)

    def close_streams(self, stream_ids: list[str], reason: Notice) -> int:
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
        if self.presence is not None:
            self.presence.stop()
        for link in list(self._links.values()):
            link.stop(timeout=self.poll * 3)

    def _link_for(self, channel: str) -> Link:
        """The link serving ``channel`` (caller holds the lock)."""
        if not self.cluster:
            name, make = "main", self.redis.pubsub
        else:
            node = self.redis.get_node_from_key(channel)  # type: ignore[union-attr]
            name = node.name
            make = self.redis.get_redis_connection(node).pubsub  # type: ignore[union-attr]
        link = self._links.get(name)
        if link is None:
            link = self._links[name] = Link(self, name, make, sharded=self.cluster)
        return link

    def lost(self, link: Link) -> None:
        """A link lost its connection: on a cluster, let go of its streams
        (their followers were told to reconnect; they will subscribe afresh,
        through whichever node serves their slot after a failover), refresh
        the cluster's map of slots, and move its control channels to the
        links serving them now."""
        if not self.cluster:
            return
        controls: list[str] = []
        with self._lock:
            for channel in list(link.channels):
                if self._link_of.get(channel) is not link:
                    continue
                self._link_of.pop(channel, None)
                if self.keys.is_control(channel):
                    controls.append(channel)
                else:
                    # The next follower of it starts a new timeline and
                    # subscription; the old followers are on their way out.
                    self._subs.pop(self.keys.stream_id_from_channel(channel), None)
            link.channels.clear()
        try:
            self.redis.nodes_manager.initialize()  # type: ignore[union-attr]
        except Exception:  # noqa: BLE001 - the next command retries it anyway
            log.debug("refreshing the cluster map failed", exc_info=True)
        for channel in controls:
            with self._lock:
                moved = self._join(channel)
            moved.subscribe(channel)

    def retire(self, link: Link) -> bool:
        """Drop a cluster node's link that carries no channel; True if dropped.
        Under the lock, so a subscribe either finds it busy or makes a new one."""
        with self._lock:
            if link.channels:
                return False
            if self._links.get(link.name) is link:
                del self._links[link.name]
            return True

    def dispatch(self, message: dict[str, Any]) -> None:
        """Hand one pub/sub message to the followers of its stream."""
        kind = message.get("type")
        if kind not in ("message", "smessage", "subscribe", "ssubscribe"):
            return
        channel = as_text(message["channel"])
        stream_id = self.keys.stream_id_from_channel(channel)
        if self.keys.is_control(channel):
            if kind in ("message", "smessage"):
                self._request(stream_id, message["data"])
            else:  # (re)subscribed: a request sent meanwhile is in the record
                self._recheck(stream_id)
            return
        timeline = self._subs.get(stream_id)
        if timeline is None:
            return
        if kind in ("subscribe", "ssubscribe"):
            timeline.resync()
            return
        try:
            events = parse_message(message["data"])
        except ValueError:
            log.error("malformed announcement on %s", message["channel"])
            timeline.resync()
            return
        for event in events:
            event.encode()  # once per worker, here; followers share the bytes
        timeline.add(events)

    def _recheck(self, stream_id: str) -> None:
        """Read the stored cancel request of a stream with a producer here,
        as a (re)subscription may have missed the request's message."""
        with self._lock:
            if stream_id not in self._cancel_listeners:
                return
        try:
            request = stored_request(self.redis, self.keys, stream_id)
        except UNAVAILABLE as exc:  # the producer's heartbeat reads it too
            outages.of(self.redis).failed(exc)
            log.debug("could not read the cancel flag of %s: %s", stream_id, exc)
            return
        if request:
            self._request(stream_id, request)

    def _request(self, stream_id: str, payload: Any) -> None:
        """Hand a cancel request to the producers of ``stream_id`` here."""
        try:
            request = json.loads(as_text(payload))
        except ValueError:
            request = None
        with self._lock:
            listeners = list(self._cancel_listeners.get(stream_id, ()))
        for on_request in listeners:
            on_request(request if isinstance(request, dict) else None)
